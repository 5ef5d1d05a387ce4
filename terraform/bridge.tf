# The queue bridge (`python -m shared.bridge`) on a Cloud Run worker pool: a long-running
# RabbitMQ consumer with no HTTP port, always on (no request-based CPU throttling). It drives
# the worker with push envelopes (sink "http", OIDC token for WORKER_AUDIENCE) or publishes to
# the Pub/Sub topic (sink "pubsub"). Its traffic goes through the VPC so the internal-only
# worker accepts it.
#
# Scaling: bridge.instances fixes the instance count (manual scaling); each instance keeps
# bridge.max_parallel messages in flight. To scale on queue length, deploy CREMA (Cloud Run
# External Metrics Autoscaling, KEDA's RabbitMQ scaler) against this worker pool.

locals {
  bridge_env = merge(local.common_env, {
    BRIDGE_SINK     = var.bridge.sink
    MAX_PARALLEL    = tostring(var.bridge.max_parallel)
    PUBSUB_TOPIC    = google_pubsub_topic.messages.id
    WORKER_AUDIENCE = local.worker_url
    WORKER_TIMEOUT  = tostring(var.timeouts.worker)
    WORKER_URL      = local.worker_url
  })
}

resource "google_cloud_run_v2_worker_pool" "bridge" {
  name                = "${local.prefix}-bridge"
  location            = var.region
  deletion_protection = false

  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = var.bridge.instances
  }

  template {
    service_account = google_service_account.bridge.email

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.this.id
        subnetwork = google_compute_subnetwork.this.id
        tags       = ["eai-serverless"]
      }
    }

    containers {
      image = var.bridge_image

      resources {
        limits = {
          cpu    = var.bridge.cpu
          memory = var.bridge.memory
        }
      }

      dynamic "env" {
        for_each = local.bridge_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = toset(local.workload_secrets["bridge"])
        content {
          name = env.value
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.this[env.value].secret_id
              version = local.secret_version[env.value]
            }
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.access]
}

resource "google_cloud_run_v2_service_iam_member" "bridge_invokes_worker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["worker"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.bridge.member
}

# The three HTTP functions (Cloud Functions gen2, Python 3.12), one service account each.
# Secrets reach them only as secret environment variables (secrets.tf); plain settings are
# the names shared/config.py reads. THREADS matches the per-instance concurrency so gunicorn
# serves as many requests as Cloud Run sends.

resource "google_cloudfunctions2_function" "this" {
  #checkov:skip=CKV_GCP_124:Only the worker is internal-only; webhook and poll must take traffic from the external HTTPS load balancer (ALLOW_INTERNAL_AND_GCLB, direct URLs blocked).
  for_each    = local.functions
  name        = "${local.prefix}-${each.key}"
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = "python312"
    entry_point     = each.key
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.bundles.name
        object = google_storage_bucket_object.bundle[each.key].name
      }
    }
  }

  service_config {
    available_cpu                    = each.value.scaling.cpu
    available_memory                 = each.value.scaling.memory
    max_instance_request_concurrency = each.value.scaling.concurrency
    min_instance_count               = each.value.scaling.min_instances
    max_instance_count               = each.value.scaling.max_instances
    timeout_seconds                  = each.value.timeout
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function[each.key].email

    environment_variables = merge(local.common_env, {
      THREADS = tostring(each.value.scaling.concurrency)
    })

    dynamic "secret_environment_variables" {
      for_each = local.workload_secrets[each.key]
      iterator = secret
      content {
        key        = secret.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.this[secret.value].secret_id
        version    = local.secret_version[secret.value]
      }
    }

    direct_vpc_network_interface {
      network    = google_compute_network.this.id
      subnetwork = google_compute_subnetwork.this.id
      tags       = ["eai-serverless"]
    }
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
  }

  # Instances read their secrets at start: the accessor bindings must exist first.
  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.access,
    google_storage_bucket_iam_member.build_reads_bundles,
  ]
}

# Webhook and poll authenticate clients themselves (bearer tokens, API keys, JWT), so the load
# balancer may call them unauthenticated. The worker never gets a public invoker.
resource "google_cloud_run_v2_service_iam_member" "public_invoker" {
  for_each = { for name, fn in local.functions : name => fn if fn.public }
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

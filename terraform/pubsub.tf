# Pub/Sub path for bridge.sink = "pubsub": the bridge publishes each RabbitMQ message to the
# topic; a push subscription calls the worker with an OIDC token. Pub/Sub owns retries
# (exponential back-off) and moves a message to the dead-letter topic after
# max_delivery_attempts. The worker's 2xx acks, 429 and 5xx are retried.

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  worker_url           = google_cloudfunctions2_function.this["worker"].service_config[0].uri
}

resource "google_pubsub_topic" "messages" {
  #checkov:skip=CKV_GCP_83:Messages are short-lived work items already protected by Google-managed encryption; a CMEK key ring is not part of this deployment.
  name                       = "${local.prefix}-user-messages"
  message_retention_duration = var.pubsub.message_retention
  depends_on                 = [google_project_service.this]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Dead letters use Google-managed encryption like the main topic; a CMEK key ring is not part of this deployment.
  name                       = "${local.prefix}-user-messages-dlq"
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.this]
}

resource "google_pubsub_subscription" "worker_push" {
  name                       = "${local.prefix}-worker-push"
  topic                      = google_pubsub_topic.messages.id
  ack_deadline_seconds       = var.pubsub.ack_deadline_seconds
  message_retention_duration = var.pubsub.message_retention

  push_config {
    push_endpoint = local.worker_url
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.worker_url
    }
  }

  retry_policy {
    minimum_backoff = var.pubsub.minimum_backoff
    maximum_backoff = var.pubsub.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.pubsub.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expire, even when no message arrives for weeks
  }

  lifecycle {
    precondition {
      condition     = var.bridge.sink != "pubsub" || var.pubsub.ack_deadline_seconds > var.timeouts.agent
      error_message = "With bridge.sink = \"pubsub\" a push request is cut at pubsub.ack_deadline_seconds (at most 600 s), which must exceed timeouts.agent; lower timeouts.agent or use bridge.sink = \"http\"."
    }
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invokes_worker,
    google_pubsub_topic_iam_member.service_agent_dead_letter,
  ]
}

# Kept for inspection and replay; never expires.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${local.prefix}-user-messages-dlq"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# The push identity may invoke the worker, and Pub/Sub may mint its OIDC tokens.
resource "google_cloud_run_v2_service_iam_member" "push_invokes_worker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["worker"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

resource "google_service_account_iam_member" "service_agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Dead-lettering: the Pub/Sub service agent publishes to the DLQ topic and acks the original.
resource "google_pubsub_topic_iam_member" "service_agent_dead_letter" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "service_agent_acks_dead_letters" {
  subscription = google_pubsub_subscription.worker_push.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# The bridge publishes to the topic (pubsub sink only needs this one binding).
resource "google_pubsub_topic_iam_member" "bridge_publishes" {
  topic  = google_pubsub_topic.messages.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.bridge.member
}

# Optional monitoring: alert when messages reach the dead-letter topic and when the worker logs
# errors. Created only when alerting.notification_channels is not empty.

locals {
  alerting_enabled = length(var.alerting.notification_channels) > 0
}

resource "google_logging_metric" "worker_errors" {
  name   = "${local.prefix}-worker-errors"
  filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.this["worker"].name}\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  count                 = local.alerting_enabled ? 1 : 0
  display_name          = "EAI gateway ${var.environment}: messages dead-lettered"
  combiner              = "OR"
  notification_channels = var.alerting.notification_channels

  conditions {
    display_name = "Undelivered messages in ${google_pubsub_subscription.dead_letter.name}"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "worker_errors" {
  count                 = local.alerting_enabled ? 1 : 0
  display_name          = "EAI gateway ${var.environment}: worker errors"
  combiner              = "OR"
  notification_channels = var.alerting.notification_channels

  conditions {
    display_name = "Worker error logs"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.worker_errors.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 5
      duration        = "300s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}

# Audit stream: the gateway writes audit records as JSON with "logger": "audit" and the label
# stream=eai-gateway-audit (shared/audit.py). A sink copies them into their own log bucket, kept
# var.audit_log.retention_days (90) days, so that they outlive the application logs.
resource "google_logging_project_bucket_config" "audit" {
  project        = var.project_id
  location       = var.audit_log.location
  bucket_id      = "${local.prefix}-audit"
  retention_days = var.audit_log.retention_days
  description    = "EAI gateway ${var.environment}: audit records (who, what, when, result)"
}

resource "google_logging_project_sink" "audit" {
  name                   = "${local.prefix}-audit"
  destination            = "logging.googleapis.com/projects/${var.project_id}/locations/${var.audit_log.location}/buckets/${google_logging_project_bucket_config.audit.bucket_id}"
  filter                 = "jsonPayload.logger=\"audit\" AND labels.stream=\"eai-gateway-audit\""
  unique_writer_identity = true
}

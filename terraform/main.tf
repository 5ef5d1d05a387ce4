# Shared naming, the workloads this configuration deploys, and the APIs they need.

locals {
  prefix     = "${var.name_prefix}-${var.environment}"
  bundle_dir = coalesce(var.bundle_dir, "${path.module}/../dist")
  base_url   = "https://${var.domain}"

  # The three HTTP functions. `public` functions sit behind the load balancer (routing.tf) and
  # answer anyone (the gateway authenticates clients itself); the worker is internal-only and
  # is invoked by the bridge or the Pub/Sub push subscription with an OIDC token.
  functions = {
    poll = {
      description = "Results, task status, last activity, health and metrics."
      ingress     = "ALLOW_INTERNAL_AND_GCLB"
      public      = true
      scaling     = var.functions.poll
      timeout     = var.timeouts.poll
    }
    webhook = {
      description = "Accepts WhatsApp user messages and queues them on RabbitMQ."
      ingress     = "ALLOW_INTERNAL_AND_GCLB"
      public      = true
      scaling     = var.functions.webhook
      timeout     = var.timeouts.webhook
    }
    worker = {
      description = "Runs the pipeline (download, transcribe, agent, format, store) for one message."
      ingress     = "ALLOW_INTERNAL_ONLY"
      public      = false
      scaling     = var.functions.worker
      timeout     = var.timeouts.worker
    }
  }

  # Plain (non-secret) settings, named as shared/config.py reads them. Empty values are left
  # out so the application defaults apply.
  common_env = { for name, value in merge(
    {
      AGENT_FALLBACK_PROVIDERS = join(",", var.agent.fallback_providers)
      AGENT_PROVIDER           = var.agent.provider
      AGENT_TIMEOUT            = tostring(var.timeouts.agent)
      GOOGLE_PROJECT_ID        = var.project_id
      GOOGLE_REGION            = var.region
      LOG_EXECUTION_ID         = "true"
      LOG_FORMAT               = "json"
      LOG_LEVEL                = var.log_level
      PUBLIC_BASE_URL          = local.base_url
      REASONING_ENGINE_ID      = var.agent.reasoning_engine_id
      TRANSCRIBE_PROVIDER      = var.agent.transcribe_provider
      WEBHOOK_SUCCESS_STATUS   = tostring(var.webhook_success_status)
    },
    var.extra_env,
  ) : name => value if value != null && value != "" }
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "this" {
  for_each = toset([
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "speech.googleapis.com",
    "storage.googleapis.com",
  ])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

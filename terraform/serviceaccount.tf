# Identities, one per workload, with the least privilege each needs. Secret access is granted
# per secret in secrets.tf; worker invocation in bridge.tf and pubsub.tf.

locals {
  worker_project_roles = [
    "roles/aiplatform.user", # Vertex AI Agent Engine queries
    "roles/speech.client",   # Speech-to-Text v2 recognize
  ]
  workload_members = merge(
    { for name, sa in google_service_account.function : name => sa.member },
    { bridge = google_service_account.bridge.member },
  )
}

resource "google_service_account" "function" {
  for_each     = local.functions
  account_id   = "${local.prefix}-${each.key}"
  display_name = "EAI gateway ${each.key} function (${var.environment})"
}

resource "google_service_account" "bridge" {
  account_id   = "${local.prefix}-bridge"
  display_name = "EAI gateway queue bridge (${var.environment})"
}

resource "google_service_account" "push" {
  account_id   = "${local.prefix}-push"
  display_name = "EAI gateway Pub/Sub push to the worker (${var.environment})"
}

resource "google_service_account" "build" {
  account_id   = "${local.prefix}-build"
  display_name = "EAI gateway function builds (${var.environment})"
}

resource "google_project_iam_member" "worker" {
  for_each = toset(local.worker_project_roles)
  project  = var.project_id
  role     = each.value
  member   = google_service_account.function["worker"].member
}

# The function build writes logs and the built image; it reads the bundles.
resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/artifactregistry.writer",
    "roles/logging.logWriter",
  ])
  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_reads_bundles" {
  bucket = google_storage_bucket.bundles.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

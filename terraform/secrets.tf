# Secret Manager: every credential the gateway reads, mounted as secret environment variables
# (never plain env). Terraform creates the secrets and their access bindings; operators add the
# values (`gcloud secrets versions add`), except REDIS_URL, which is built from Memorystore here.

locals {
  # Secret env var name -> the workloads that read it.
  secret_consumers = {
    API_KEYS                = ["poll", "webhook"]
    API_TOKENS              = ["poll", "webhook"]
    CALLBACK_HMAC_SECRET    = ["worker"]
    EAI_AGENT_SERVICE_TOKEN = ["worker"]
    JWT_SECRET              = ["poll", "webhook"]
    OPENAI_API_KEY          = ["worker"]
    RABBITMQ_URL            = ["bridge", "webhook"]
    REDIS_URL               = ["bridge", "poll", "webhook", "worker"]
  }
  core_secrets = ["API_KEYS", "API_TOKENS", "JWT_SECRET", "RABBITMQ_URL", "REDIS_URL"]

  secrets = {
    for name, consumers in local.secret_consumers : name => consumers
    if contains(concat(local.core_secrets, var.optional_secrets), name)
  }

  # Workload -> sorted secret env var names it mounts.
  workload_secrets = {
    for workload in ["bridge", "poll", "webhook", "worker"] : workload => sort([
      for name, consumers in local.secrets : name if contains(consumers, workload)
    ])
  }

  secret_access = merge([
    for name, consumers in local.secrets : {
      for workload in consumers : "${name}/${workload}" => { secret = name, workload = workload }
    }
  ]...)

  secret_version = merge(
    { for name in keys(local.secrets) : name => lookup(var.secret_versions, name, "latest") },
    { REDIS_URL = google_secret_manager_secret_version.redis_url.version },
  )

  redis_url = var.redis.mode == "cluster" ? format(
    "%s://%s:%d",
    var.redis.transit_encryption ? "rediss+cluster" : "redis+cluster",
    google_redis_cluster.this[0].discovery_endpoints[0].address,
    google_redis_cluster.this[0].discovery_endpoints[0].port,
    ) : format(
    "%s://:%s@%s:%d/0",
    var.redis.transit_encryption ? "rediss" : "redis",
    google_redis_instance.this[0].auth_string,
    google_redis_instance.this[0].host,
    google_redis_instance.this[0].port,
  )
}

resource "google_secret_manager_secret" "this" {
  for_each  = local.secrets
  secret_id = "${local.prefix}-${lower(replace(each.key, "_", "-"))}"

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "redis_url" {
  secret      = google_secret_manager_secret.this["REDIS_URL"].id
  secret_data = local.redis_url
}

resource "google_secret_manager_secret_iam_member" "access" {
  for_each  = local.secret_access
  secret_id = google_secret_manager_secret.this[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.workload_members[each.value.workload]
}

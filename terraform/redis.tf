# Memorystore for Redis: task status, results, threads and rate limits, shared by all instances
# (and by the Go gateway during the migration). AUTH is always on; the URL with the AUTH string
# is stored as the REDIS_URL secret (secrets.tf).

resource "google_redis_instance" "this" {
  #checkov:skip=CKV_GCP_97:In-transit TLS is opt-in (redis.transit_encryption): it needs the instance CA mounted in every client, which the gateway does not load yet; traffic stays on the private peering and AUTH is enforced.
  name                    = "${local.prefix}-redis"
  region                  = var.region
  tier                    = var.redis.tier
  memory_size_gb          = var.redis.memory_size_gb
  redis_version           = var.redis.version
  authorized_network      = google_compute_network.this.id
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = var.redis.transit_encryption ? "SERVER_AUTHENTICATION" : "DISABLED"
  deletion_protection     = var.redis.deletion_protection

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 6
        minutes = 0
      }
    }
  }

  depends_on = [google_project_service.this]
}

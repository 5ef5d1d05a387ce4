# Memorystore for Redis: task status, results, threads and rate limits, shared by all instances
# (and by the Go gateway during the migration). AUTH is always on; the URL with the AUTH string
# is stored as the REDIS_URL secret (secrets.tf).

resource "google_redis_instance" "this" {
  count = var.redis.mode == "instance" ? 1 : 0
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

# Memorystore for Redis Cluster (redis.mode = "cluster"): reached through Private Service Connect in
# the functions' subnet. The gateway keeps every multi-key script in one hash slot, so it runs on a
# cluster unchanged (REDIS_URL = redis+cluster://<discovery endpoint>).
resource "google_network_connectivity_service_connection_policy" "redis" {
  count         = var.redis.mode == "cluster" ? 1 : 0
  name          = "${local.prefix}-redis-psc"
  location      = var.region
  service_class = "gcp-memorystore-redis"
  network       = google_compute_network.this.id

  psc_config {
    subnetworks = [google_compute_subnetwork.this.id]
  }

  depends_on = [google_project_service.this]
}

resource "google_redis_cluster" "this" {
  count = var.redis.mode == "cluster" ? 1 : 0
  #checkov:skip=CKV_GCP_97:In-transit TLS is opt-in (redis.transit_encryption), as for the instance: the gateway does not load the cluster CA yet; traffic stays on Private Service Connect.
  name                        = "${local.prefix}-redis"
  region                      = var.region
  shard_count                 = var.redis.shard_count
  replica_count               = var.redis.tier == "STANDARD_HA" ? 1 : 0
  authorization_mode          = "AUTH_MODE_DISABLED"
  transit_encryption_mode     = var.redis.transit_encryption ? "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION" : "TRANSIT_ENCRYPTION_MODE_DISABLED"
  deletion_protection_enabled = var.redis.deletion_protection

  psc_configs {
    network = google_compute_network.this.id
  }

  depends_on = [google_network_connectivity_service_connection_policy.redis]
}

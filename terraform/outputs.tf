output "base_url" {
  description = "Public base URL of the gateway (routes /api/v1/message/... and /health)."
  value       = local.base_url
}

output "bridge_worker_pool" {
  description = "Name of the Cloud Run worker pool running the queue bridge."
  value       = google_cloud_run_v2_worker_pool.bridge.name
}

output "bundle_objects" {
  description = "Content-addressed source objects deployed per function."
  value       = { for name, object in google_storage_bucket_object.bundle : name => "gs://${object.bucket}/${object.name}" }
}

output "dead_letter_topic" {
  description = "Pub/Sub dead-letter topic of the worker push subscription."
  value       = google_pubsub_topic.dead_letter.id
}

output "function_urls" {
  description = "Direct URLs of the functions (webhook and poll accept only load balancer traffic; the worker only internal traffic)."
  value       = { for name, fn in google_cloudfunctions2_function.this : name => fn.service_config[0].uri }
}

output "load_balancer_ip" {
  description = "IP address to publish as the DNS A record of var.domain."
  value       = google_compute_global_address.this.address
}

output "pubsub_topic" {
  description = "Pub/Sub topic the bridge publishes to with bridge.sink = \"pubsub\" (PUBSUB_TOPIC)."
  value       = google_pubsub_topic.messages.id
}

output "redis_host" {
  description = "Private address of the Memorystore instance, or the cluster's discovery endpoint."
  value = (var.redis.mode == "cluster"
    ? "${google_redis_cluster.this[0].discovery_endpoints[0].address}:${google_redis_cluster.this[0].discovery_endpoints[0].port}"
    : "${google_redis_instance.this[0].host}:${google_redis_instance.this[0].port}"
  )
}

output "secret_ids" {
  description = "Secret Manager secret per env var name; add a version to each (except REDIS_URL) before the first apply."
  value       = { for name, secret in google_secret_manager_secret.this : name => secret.secret_id }
}

output "service_accounts" {
  description = "Service account email per workload."
  value = merge(
    { for name, sa in google_service_account.function : name => sa.email },
    {
      bridge = google_service_account.bridge.email
      build  = google_service_account.build.email
      push   = google_service_account.push.email
    },
  )
}

output "worker_push_subscription" {
  description = "Push subscription delivering the topic to the worker."
  value       = google_pubsub_subscription.worker_push.id
}

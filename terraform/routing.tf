# One public HTTPS base URL: a global external Application Load Balancer with a Google-managed
# certificate. /api/v1/message/webhook/* goes to the webhook function; everything else
# (/api/v1/message/response, /health, /ready, /metrics, /openapi.json ...) to poll. Plain HTTP
# is redirected to HTTPS. The worker has no route.

locals {
  public_functions = { for name, fn in local.functions : name => fn if fn.public }
}

resource "google_compute_global_address" "this" {
  name       = "${local.prefix}-lb"
  depends_on = [google_project_service.this]
}

resource "google_compute_region_network_endpoint_group" "function" {
  for_each              = local.public_functions
  name                  = "${local.prefix}-${each.key}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloudfunctions2_function.this[each.key].name
  }
}

resource "google_compute_backend_service" "function" {
  for_each              = local.public_functions
  name                  = "${local.prefix}-${each.key}"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"

  backend {
    group = google_compute_region_network_endpoint_group.function[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "https" {
  name            = "${local.prefix}-https"
  default_service = google_compute_backend_service.function["poll"].id

  host_rule {
    hosts        = [var.domain]
    path_matcher = "gateway"
  }

  path_matcher {
    name            = "gateway"
    default_service = google_compute_backend_service.function["poll"].id

    path_rule {
      paths   = ["/api/v1/message/webhook/*"]
      service = google_compute_backend_service.function["webhook"].id
    }
  }
}

resource "google_compute_managed_ssl_certificate" "this" {
  name = "${local.prefix}-${substr(sha1(var.domain), 0, 8)}"

  managed {
    domains = [var.domain]
  }

  # A new domain means a new certificate: create it before the old one is detached.
  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "this" {
  name            = "${local.prefix}-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "this" {
  name             = "${local.prefix}-https"
  url_map          = google_compute_url_map.https.id
  ssl_certificates = [google_compute_managed_ssl_certificate.this.id]
  ssl_policy       = google_compute_ssl_policy.this.id
}

resource "google_compute_global_forwarding_rule" "https" {
  name                  = "${local.prefix}-https"
  ip_address            = google_compute_global_address.this.id
  ip_protocol           = "TCP"
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_https_proxy.this.id
}

resource "google_compute_url_map" "http_redirect" {
  name = "${local.prefix}-http-redirect"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  name    = "${local.prefix}-http-redirect"
  url_map = google_compute_url_map.http_redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  name                  = "${local.prefix}-http"
  ip_address            = google_compute_global_address.this.id
  ip_protocol           = "TCP"
  port_range            = "80"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_http_proxy.redirect.id
}

# VPC for serverless egress. Functions and the bridge attach to the subnet with Direct VPC
# egress (no connector VMs to pay for) to reach Memorystore and a privately addressed RabbitMQ.
# Private Google Access lets the bridge, which routes all its traffic through the VPC so that
# the internal-only worker accepts it, still reach Google APIs; Cloud NAT lets it reach a
# broker on the internet (e.g. CloudAMQP).

resource "google_compute_network" "this" {
  name                    = "${local.prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
  depends_on              = [google_project_service.this]
}

resource "google_compute_subnetwork" "this" {
  name                     = "${local.prefix}-serverless"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.network.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.1
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "this" {
  count   = var.network.cloud_nat ? 1 : 0
  name    = "${local.prefix}-router"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  count                              = var.network.cloud_nat ? 1 : 0
  name                               = "${local.prefix}-nat"
  region                             = var.region
  router                             = google_compute_router.this[0].name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.this.self_link
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Nothing in this VPC serves inbound traffic from outside it: state that explicitly (and log
# it) rather than relying on the implied rule. Serverless egress needs no ingress rule.
resource "google_compute_firewall" "deny_ingress" {
  name          = "${local.prefix}-deny-ingress"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

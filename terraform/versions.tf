# Terraform and provider versions. The google provider is pinned to the 7.x line:
# 8.0 brings breaking changes (see its upgrade guide) and must be adopted on purpose.

terraform {
  required_version = ">= 1.6.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
  default_labels = merge(var.labels, {
    app         = "eai-agent-gateway"
    environment = var.environment
  })
}

# Function sources: the zips built by `make package` (scripts/package.py) are uploaded under a
# name carrying their MD5, so any change to a bundle creates a new object and redeploys that
# function, while an unchanged bundle leaves the function alone.

resource "google_storage_bucket" "bundles" {
  #checkov:skip=CKV_GCP_62:Access logs of a bucket written only by Terraform and read only by Cloud Build add cost without audit value; Cloud Audit Logs record admin access.
  name                        = "${var.project_id}-${local.prefix}-bundles"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_storage_bucket_object" "bundle" {
  for_each = local.functions
  name     = "${each.key}-${filemd5("${local.bundle_dir}/${each.key}.zip")}.zip"
  bucket   = google_storage_bucket.bundles.name
  source   = "${local.bundle_dir}/${each.key}.zip"
}

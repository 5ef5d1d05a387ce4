# Remote state in GCS. The bucket and prefix are given at init time (partial configuration),
# so one configuration serves every environment:
#
#   terraform init \
#     -backend-config="bucket=<project>-tfstate" \
#     -backend-config="prefix=eai-gateway/<environment>"
#
# The state holds the Redis AUTH string (it is part of REDIS_URL): keep the bucket private,
# versioned, and readable only by the deployers and the Cloud Build service account.

terraform {
  backend "gcs" {}
}

# Input variables, in alphabetical order. Structured settings are objects whose attributes are
# optional with the defaults below, so a tfvars file only states what differs.

variable "agent" {
  description = "Agent settings passed to the functions: default provider, fallbacks, Vertex AI Agent Engine id and transcription provider (null or empty = application default)."
  type = object({
    fallback_providers  = optional(list(string), [])
    provider            = optional(string, "google_agent_engine")
    reasoning_engine_id = optional(string, "")
    transcribe_provider = optional(string)
  })
  default  = {}
  nullable = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]*$", var.agent.provider))
    error_message = "agent.provider must be a provider name such as \"google_agent_engine\", \"eai\" or \"mock\" (lower case, digits and underscores)."
  }
}

variable "alerting" {
  description = "Monitoring: notification channel ids (projects/P/notificationChannels/N) alerted when messages reach the dead-letter topic or the worker logs errors. Empty = no alert policies."
  type = object({
    notification_channels = optional(list(string), [])
  })
  default  = {}
  nullable = false
}

variable "audit_log" {
  description = "Audit stream (JSON records of logger \"audit\": accepted webhooks, auth failures, rate-limit refusals, admin access, start-up configuration): routed by a log sink into its own log bucket. location = the bucket's region (or global); retention_days = how long records are kept (90 by default)."
  type = object({
    location       = optional(string, "global")
    retention_days = optional(number, 90)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.audit_log.retention_days >= 1 && var.audit_log.retention_days <= 3650
    error_message = "audit_log.retention_days must be between 1 and 3650 days (Cloud Logging bucket limits)."
  }
}

variable "bridge" {
  description = "Queue bridge (RabbitMQ -> worker) on a Cloud Run worker pool: sink, instance count, in-flight messages per instance, CPU and memory."
  type = object({
    cpu          = optional(string, "1")
    instances    = optional(number, 1)
    max_parallel = optional(number, 8)
    memory       = optional(string, "512Mi")
    sink         = optional(string, "http")
  })
  default  = {}
  nullable = false
  validation {
    condition     = contains(["http", "pubsub"], var.bridge.sink)
    error_message = "bridge.sink must be \"http\" (the bridge POSTs to the worker and owns retries) or \"pubsub\" (the bridge publishes; the push subscription owns retries)."
  }
  validation {
    condition     = var.bridge.instances >= 0 && var.bridge.instances <= 100
    error_message = "bridge.instances must be between 0 (paused) and 100."
  }
  validation {
    condition     = var.bridge.max_parallel >= 1 && var.bridge.max_parallel <= 1024
    error_message = "bridge.max_parallel (MAX_PARALLEL) must be between 1 and 1024."
  }
}

variable "bridge_image" {
  description = "Container image of the queue bridge (built from Dockerfile.bridge by Cloud Build), e.g. europe-west1-docker.pkg.dev/P/eai-gateway/bridge:abc1234."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/.+[:@].+$", var.bridge_image))
    error_message = "bridge_image must be a full image reference with a tag or digest, e.g. REGION-docker.pkg.dev/PROJECT/REPO/bridge:SHORT_SHA."
  }
}

variable "bundle_dir" {
  description = "Folder holding the function bundles <function>.zip built by `make package`. Null = ../dist relative to this configuration."
  type        = string
  default     = null
}

variable "domain" {
  description = "Public host name of the gateway (the load balancer's managed TLS certificate is issued for it; point its DNS A record at the load_balancer_ip output)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a lower-case fully qualified host name such as gateway.example.org (no scheme, no path)."
  }
}

variable "environment" {
  description = "Environment name (e.g. staging, prod); part of every resource name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits starting with a letter (e.g. staging, prod), so that service account ids stay within 30 characters."
  }
}

variable "extra_env" {
  description = "Additional plain environment variables for the functions and the bridge (non-secret settings only; secrets go to Secret Manager)."
  type        = map(string)
  default     = {}
  nullable    = false
  validation {
    condition     = alltrue([for name in keys(var.extra_env) : length(regexall("(?i)(secret|token|password|passwd|api_key|rabbitmq_url|redis_url)", name)) == 0])
    error_message = "extra_env must not carry secrets (names containing SECRET, TOKEN, PASSWORD, API_KEY, RABBITMQ_URL or REDIS_URL): store them in Secret Manager (secrets.tf) instead."
  }
}

variable "functions" {
  description = "Per-function scaling: vCPU, memory, requests in flight per instance (also sets THREADS), min and max instances."
  type = object({
    poll = optional(object({
      concurrency   = optional(number, 80)
      cpu           = optional(string, "1")
      max_instances = optional(number, 20)
      memory        = optional(string, "512Mi")
      min_instances = optional(number, 0)
    }), {})
    webhook = optional(object({
      concurrency   = optional(number, 80)
      cpu           = optional(string, "1")
      max_instances = optional(number, 20)
      memory        = optional(string, "512Mi")
      min_instances = optional(number, 1)
    }), {})
    worker = optional(object({
      concurrency   = optional(number, 16)
      cpu           = optional(string, "1")
      max_instances = optional(number, 20)
      memory        = optional(string, "1Gi")
      min_instances = optional(number, 0)
    }), {})
  })
  default  = {}
  nullable = false
  validation {
    condition     = alltrue([for f in values(var.functions) : f.concurrency >= 1 && f.concurrency <= 1000])
    error_message = "functions.<name>.concurrency must be between 1 and 1000."
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : f.concurrency == 1 || tonumber(f.cpu) >= 1])
    error_message = "functions.<name>.cpu must be at least \"1\" when concurrency is above 1 (Cloud Functions requires a full vCPU for concurrent requests)."
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : f.min_instances >= 0 && f.min_instances <= f.max_instances])
    error_message = "functions.<name>.min_instances must be between 0 and max_instances."
  }
}

variable "labels" {
  description = "Labels added to every resource (app and environment are always set)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "log_level" {
  description = "LOG_LEVEL of the functions and the bridge."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be one of DEBUG, INFO, WARNING, ERROR."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (followed by the environment)."
  type        = string
  default     = "eai"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,5}$", var.name_prefix))
    error_message = "name_prefix must be 2-6 lower-case letters or digits starting with a letter (service account ids are limited to 30 characters)."
  }
}

variable "network" {
  description = "VPC for serverless egress to Memorystore and RabbitMQ: subnet range and whether to add Cloud NAT (needed when the bridge reaches a broker on the internet)."
  type = object({
    cloud_nat   = optional(bool, true)
    subnet_cidr = optional(string, "10.20.0.0/24")
  })
  default  = {}
  nullable = false
  validation {
    condition     = can(cidrhost(var.network.subnet_cidr, 0)) && tonumber(split("/", var.network.subnet_cidr)[1]) <= 26
    error_message = "network.subnet_cidr must be an IPv4 CIDR of /26 or larger (Direct VPC egress takes addresses per instance), e.g. 10.20.0.0/24."
  }
}

variable "optional_secrets" {
  description = "Secrets to create and mount besides the core ones (API_KEYS, API_TOKENS, JWT_SECRET, RABBITMQ_URL, REDIS_URL). Add a version to each before the first apply."
  type        = list(string)
  default     = ["CALLBACK_HMAC_SECRET"]
  nullable    = false
  validation {
    condition     = alltrue([for s in var.optional_secrets : contains(["CALLBACK_HMAC_SECRET", "EAI_AGENT_SERVICE_TOKEN", "OPENAI_API_KEY"], s)])
    error_message = "optional_secrets may only list CALLBACK_HMAC_SECRET, EAI_AGENT_SERVICE_TOKEN and OPENAI_API_KEY."
  }
}

variable "project_id" {
  description = "Google Cloud project id to deploy into."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id (6-30 lower-case letters, digits or hyphens), not a project name or number."
  }
}

variable "pubsub" {
  description = "Push subscription to the worker (used by bridge.sink = \"pubsub\"): ack deadline, retry back-off, delivery attempts before the dead-letter topic, retention."
  type = object({
    ack_deadline_seconds  = optional(number, 600)
    max_delivery_attempts = optional(number, 10)
    maximum_backoff       = optional(string, "600s")
    message_retention     = optional(string, "86400s")
    minimum_backoff       = optional(string, "10s")
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.pubsub.ack_deadline_seconds >= 10 && var.pubsub.ack_deadline_seconds <= 600
    error_message = "pubsub.ack_deadline_seconds must be between 10 and 600 (Pub/Sub's push request timeout limit)."
  }
  validation {
    condition     = var.pubsub.max_delivery_attempts >= 5 && var.pubsub.max_delivery_attempts <= 100
    error_message = "pubsub.max_delivery_attempts must be between 5 and 100 (Pub/Sub dead-letter policy limits)."
  }
  validation {
    condition     = alltrue([for d in [var.pubsub.minimum_backoff, var.pubsub.maximum_backoff] : can(regex("^[0-9]+s$", d)) && tonumber(trimsuffix(d, "s")) <= 600])
    error_message = "pubsub.minimum_backoff and maximum_backoff must be durations in seconds such as \"10s\", at most \"600s\"."
  }
}

variable "redis" {
  description = "Memorystore: mode (instance, or cluster for Memorystore for Redis Cluster), tier, size, shards, version, in-transit encryption and deletion protection."
  type = object({
    deletion_protection = optional(bool, true)
    memory_size_gb      = optional(number, 1)
    mode                = optional(string, "instance")
    shard_count         = optional(number, 3)
    tier                = optional(string, "BASIC")
    transit_encryption  = optional(bool, false)
    version             = optional(string, "REDIS_7_2")
  })
  default  = {}
  nullable = false
  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis.tier)
    error_message = "redis.tier must be BASIC (single node, staging) or STANDARD_HA (replicated, production)."
  }
  validation {
    condition     = var.redis.memory_size_gb >= 1 && var.redis.memory_size_gb <= 300
    error_message = "redis.memory_size_gb must be between 1 and 300."
  }
  validation {
    condition     = contains(["instance", "cluster"], var.redis.mode)
    error_message = "redis.mode must be instance (one Memorystore instance) or cluster (Memorystore for Redis Cluster, REDIS_URL redis+cluster://)."
  }
  validation {
    condition     = var.redis.shard_count >= 1 && var.redis.shard_count <= 250
    error_message = "redis.shard_count must be between 1 and 250."
  }
}

variable "region" {
  description = "Region of the functions, bridge, Redis and subnet (e.g. us-central1; Chirp 2 speech models are in us-central1 and europe-west4)."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or southamerica-east1 (not a zone)."
  }
}

variable "secret_versions" {
  description = "Secret version to mount per secret env var name (default \"latest\"; pin a number for reproducible rollouts). REDIS_URL is managed here and always pinned."
  type        = map(string)
  default     = {}
  nullable    = false
  validation {
    condition     = alltrue([for v in values(var.secret_versions) : can(regex("^([0-9]+|latest)$", v))])
    error_message = "secret_versions values must be a version number such as \"3\" or \"latest\"."
  }
}

variable "timeouts" {
  description = "Seconds: the agent call (AGENT_TIMEOUT) and each function's request timeout. The worker must outlive the agent call it makes."
  type = object({
    agent   = optional(number, 1800)
    poll    = optional(number, 30)
    webhook = optional(number, 30)
    worker  = optional(number, 1900)
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.timeouts.worker > var.timeouts.agent
    error_message = "timeouts.worker must be greater than timeouts.agent: the worker downloads and transcribes before, and stores after, the agent call. Raise timeouts.worker or lower timeouts.agent."
  }
  validation {
    condition     = alltrue([for t in values(var.timeouts) : t >= 1 && t <= 3600])
    error_message = "timeouts must be between 1 and 3600 seconds (the HTTP function maximum)."
  }
}

variable "webhook_success_status" {
  description = "HTTP status of an accepted message (WEBHOOK_SUCCESS_STATUS): 202, or 201 for clients of the Go gateway."
  type        = number
  default     = 202
  validation {
    condition     = contains([201, 202], var.webhook_success_status)
    error_message = "webhook_success_status must be 201 or 202."
  }
}

# A spec reviewed in pull requests: CI plans it against the real engine and
# the real repository, and applies it when a release is published
# (README.md beside this file says how to set it up).
#
# The runner reaches only what this spec names: the S3 repository (its
# credentials come from CI secrets through the environment) and the Docker
# engine (DOCKER_HOST, ssh:// or tcp:// with TLS, set by the pipeline), so
# its plan is the plan a run on the host would make.

# Where the repository lives: not secret, so written here (reviewed with
# the rest); LIFEBOAT_VAR_s3_endpoint and the like, or --var, override them.
variable "s3_endpoint" {
  type        = string
  description = "The S3-compatible store (AWS, Garage, MinIO, …)."
  default     = "https://s3.us-east-1.amazonaws.com"
}

variable "s3_bucket" {
  type        = string
  description = "The bucket holding the repository."
  default     = "shop-backups"
}

variable "s3_region" {
  type        = string
  description = "The store's region."
  default     = "us-east-1"
}

variable "s3_prefix" {
  type        = string
  description = "The repository's key prefix inside the bucket."
  default     = "lifeboat/shop"
}

repository "offsite" {
  s3 {
    endpoint = var.s3_endpoint
    bucket   = var.s3_bucket
    region   = var.s3_region
    prefix   = var.s3_prefix

    # Names of environment variables, never the keys themselves: CI fills
    # them from its secrets, and plans never show them.
    access_key_env = "LIFEBOAT_S3_ACCESS_KEY"
    secret_key_env = "LIFEBOAT_S3_SECRET_KEY"
  }
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}

policy "daily" {
  rpo = "24h"
  retention {
    keep_daily  = 7
    keep_weekly = 4
  }
}

volume "uploads" {
  name   = "shop_uploads"
  policy = policy.daily
}

volume "config" {
  name   = "shop_config"
  policy = policy.daily
}

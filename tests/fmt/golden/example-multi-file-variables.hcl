# Values that differ between hosts. Set them with --var, --var-file or
# LIFEBOAT_VAR_<name>.

variable "project" {
  type        = string
  description = "Compose project name: prefixes every Docker volume."
  default     = "blog"
}

variable "backup_root" {
  type        = string
  description = "Directory holding the repository."
  default     = "/var/backups"
}

variable "rpo_hours" {
  type        = number
  description = "How many hours of data we accept to lose."
  default     = 6

  validation {
    condition     = var.rpo_hours >= 1 && var.rpo_hours <= 48
    error_message = "rpo_hours must be between 1 and 48."
  }
}

locals {
  repository_path = "${var.backup_root}/${var.project}"
  rpo             = "${var.rpo_hours}h"
}

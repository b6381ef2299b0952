variable "region" {
  description = "AWS region of the node."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API (your office or VPN); never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && !contains(var.admin_cidrs, "0.0.0.0/0")
    error_message = "admin_cidrs must be a non-empty list without 0.0.0.0/0."
  }
}

variable "ingress_enabled" {
  description = "Open 80/443 to http_ingress_cidrs: only once an ingress serves the inference API."
  type        = bool
  default     = false
}

variable "http_ingress_cidrs" {
  description = "CIDRs allowed to call the inference API through the ingress on 80/443."
  type        = list(string)
  default     = []
}

variable "instance_type" {
  description = "EC2 instance type of the node (staging and prod share it: 4 vCPU fit both at their maxima)."
  type        = string
  default     = "t3.xlarge"
}

variable "repo_url" {
  description = "HTTPS URL of this repository."
  type        = string
  default     = "https://github.com/cali-housing/cali-housing-mlops.git"

  validation {
    condition     = can(regex("^https://", var.repo_url))
    error_message = "repo_url must be an https:// URL."
  }
}

variable "repo_revision" {
  description = "Tag or commit from which the node bootstraps Argo CD."
  type        = string
  default     = "main"
}

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

variable "artifact_bucket_name" {
  description = "S3 bucket of MLflow's artifacts and the k3s datastore snapshots (values-prod.yaml's s3Uri names it)."
  type        = string
  default     = "cali-housing-mlflow-artifacts"
}

variable "k3s_token" {
  description = "k3s join token (openssl rand -hex 32), passed as TF_VAR_k3s_token; kept in SSM Parameter Store."
  type        = string
  sensitive   = true
}

variable "agent_instance_type" {
  description = "EC2 instance type of the agent nodes."
  type        = string
  default     = "t3.large"
}

variable "agent_count" {
  description = "Agent nodes (at least 2)."
  type        = number
  default     = 2
}

variable "data_snapshot_retention_days" {
  description = "Daily snapshots of the data volume to keep."
  type        = number
  default     = 14
}

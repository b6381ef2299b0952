variable "name" {
  description = "Name prefix of every resource (also the instance's Name tag)."
  type        = string
  default     = "cali-housing"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC in which the node's security group is created."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_id" {
  description = "Public subnet of the node (it needs a route to the internet to pull images)."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "subnet_id must look like subnet-0123abcd."
  }
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API (6443). Never 0.0.0.0/0: shell access is through SSM, not SSH."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0" && c != "::/0"])
    error_message = "admin_cidrs must be a non-empty list of valid CIDRs, none of them 0.0.0.0/0 or ::/0."
  }
}

variable "ingress_enabled" {
  description = "Open 80/443 to http_ingress_cidrs: only when an ingress controller serves the inference API (the chart renders no Ingress)."
  type        = bool
  default     = false

  validation {
    condition     = var.ingress_enabled != null
    error_message = "ingress_enabled must be true or false."
  }
}

variable "http_ingress_cidrs" {
  description = "CIDRs allowed to reach the cluster's ingress on 80/443 (the inference API). Empty closes them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.http_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "http_ingress_cidrs must be valid CIDRs."
  }
}

variable "instance_type" {
  description = "EC2 instance type (k3s, Argo CD and the services need about 4 GiB)."
  type        = string
  default     = "t3.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like t3.large."
  }
}

variable "ami_id" {
  description = "AMI of the node; null picks the latest Ubuntu 24.04 LTS (Canonical)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must be null or look like ami-0123abcd."
  }
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted root volume in GiB (OS, k3s, container images); it is replaced with the instance."
  type        = number
  default     = 40

  validation {
    condition     = var.root_volume_size_gb >= 20 && var.root_volume_size_gb <= 1000
    error_message = "root_volume_size_gb must be between 20 and 1000."
  }
}

variable "data_volume_size_gb" {
  description = "Size in GiB of the encrypted EBS data volume that holds the PersistentVolumes of the stable class (MLflow registry and artifacts, the monitor's reports, MLflow upgrade backups; the prediction-log spool is on EFS) and survives instance replacement. It can grow later (the filesystem is grown at the next boot of a new node, or by `sudo resize2fs` through SSM), never shrink."
  type        = number
  # 40: the claims of staging and prod on the stable class sum to 29 GiB (tests/deploy/test_capacity.py);
  # the volume can grow, never shrink, so the 8 GiB the spool claims left on moving to EFS stay as room.
  default = 40

  validation {
    condition     = var.data_volume_size_gb >= 5 && var.data_volume_size_gb <= 1000 && floor(var.data_volume_size_gb) == var.data_volume_size_gb
    error_message = "data_volume_size_gb must be a whole number of GiB between 5 and 1000."
  }
}

variable "data_volume_kms_key_id" {
  description = "ARN of a customer-managed KMS key for the data volume; null uses the account's default aws/ebs key (the volume is encrypted either way). Changing it replaces the volume, which prevent_destroy refuses: choose before the first apply."
  type        = string
  default     = null

  validation {
    condition     = var.data_volume_kms_key_id == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.data_volume_kms_key_id))
    error_message = "data_volume_kms_key_id must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "spool_kms_key_id" {
  description = "ARN of a customer-managed KMS key for the EFS file system of the inference spool; null uses the account's default aws/elasticfilesystem key (encrypted either way). Changing it replaces the file system, which prevent_destroy refuses: choose before the first apply."
  type        = string
  default     = null

  validation {
    condition     = var.spool_kms_key_id == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.spool_kms_key_id))
    error_message = "spool_kms_key_id must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "k3s_version" {
  description = "Pinned k3s release installed by cloud-init."
  type        = string
  default     = "v1.37.2+k3s1"

  validation {
    condition     = can(regex("^v1\\.[0-9]+\\.[0-9]+\\+k3s[0-9]+$", var.k3s_version))
    error_message = "k3s_version must be a pinned release such as v1.37.2+k3s1."
  }
}

variable "argocd_version" {
  description = "Pinned Argo CD release whose install manifest cloud-init applies."
  type        = string
  default     = "v2.14.11"

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.argocd_version))
    error_message = "argocd_version must be a pinned release such as v2.14.11."
  }
}

variable "repo_url" {
  description = "HTTPS URL of this repository (the Argo CD root Application's source)."
  type        = string

  validation {
    condition     = can(regex("^https://", var.repo_url))
    error_message = "repo_url must be an https:// URL."
  }
}

variable "repo_revision" {
  description = "Git revision (tag or commit) from which cloud-init applies argocd/project.yaml and argocd/root.yaml."
  type        = string
  default     = "main"

  validation {
    condition     = length(var.repo_revision) > 0
    error_message = "repo_revision must not be empty."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "artifact_bucket_name" {
  description = "Name of the S3 bucket for MLflow's artifacts (values-prod.yaml's s3Uri) and the k3s datastore snapshots (prefix etcd_snapshot_prefix). Globally unique; versioned, KMS-encrypted, private."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.artifact_bucket_name))
    error_message = "artifact_bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots or hyphens)."
  }
}

variable "artifact_bucket_kms_key_id" {
  description = "ARN of a customer-managed KMS key for the artifact bucket; null uses the account's aws/s3 key."
  type        = string
  default     = null

  validation {
    condition     = var.artifact_bucket_kms_key_id == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.artifact_bucket_kms_key_id))
    error_message = "artifact_bucket_kms_key_id must be null or a KMS key ARN."
  }
}

variable "artifact_noncurrent_days" {
  description = "Days a deleted or overwritten object of the artifact bucket stays recoverable (noncurrent versions expire after this)."
  type        = number
  default     = 30

  validation {
    condition     = var.artifact_noncurrent_days >= 1 && var.artifact_noncurrent_days <= 3650
    error_message = "artifact_noncurrent_days must be between 1 and 3650."
  }
}

variable "etcd_snapshot_prefix" {
  description = "Prefix (folder) of the artifact bucket that receives the k3s datastore snapshots; the node's IAM policy is scoped to it."
  type        = string
  default     = "k3s-etcd"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*$", var.etcd_snapshot_prefix))
    error_message = "etcd_snapshot_prefix must be lowercase letters, digits and hyphens, without slashes."
  }
}

variable "etcd_snapshot_cron" {
  description = "When k3s snapshots its datastore to S3 (cron, node time UTC): the datastore's RPO."
  type        = string
  default     = "0 */6 * * *"

  validation {
    condition     = length(split(" ", var.etcd_snapshot_cron)) == 5
    error_message = "etcd_snapshot_cron must be a five-field cron expression."
  }
}

variable "etcd_snapshot_retention" {
  description = "How many k3s datastore snapshots to keep (28 at every 6 hours: one week)."
  type        = number
  default     = 28

  validation {
    condition     = var.etcd_snapshot_retention >= 1 && var.etcd_snapshot_retention <= 1000
    error_message = "etcd_snapshot_retention must be between 1 and 1000."
  }
}

variable "data_snapshot_retention_days" {
  description = "Daily snapshots of the data volume to keep (DLM)."
  type        = number
  default     = 14

  validation {
    condition     = var.data_snapshot_retention_days >= 1 && var.data_snapshot_retention_days <= 1000 && floor(var.data_snapshot_retention_days) == var.data_snapshot_retention_days
    error_message = "data_snapshot_retention_days must be a whole number between 1 and 1000."
  }
}

variable "data_snapshot_time_utc" {
  description = "Time of day (UTC, HH:MM) at which DLM starts the daily data volume snapshot."
  type        = string
  default     = "03:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.data_snapshot_time_utc))
    error_message = "data_snapshot_time_utc must be HH:MM (24-hour, UTC)."
  }
}

variable "k3s_token" {
  description = "Shared secret with which agents join the server (k3s --token). Generate once (openssl rand -hex 32) and pass as TF_VAR_k3s_token; it is stored in SSM Parameter Store (SecureString) and in the Terraform state (encrypted bucket), never in user data."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9]{32,}$", var.k3s_token))
    error_message = "k3s_token must be at least 32 letters or digits (openssl rand -hex 32)."
  }
}

variable "agent_instance_type" {
  description = "EC2 instance type of the agent nodes (trainer Jobs, the MLflow server with S3 artifacts, and other pods without a claim)."
  type        = string
  default     = "t3.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*\\.[a-z0-9]+$", var.agent_instance_type))
    error_message = "agent_instance_type must look like t3.large."
  }
}

variable "agent_count" {
  description = "Agent nodes in the autoscaling group (at least 2: losing one leaves the other, and a template change rolls one at a time)."
  type        = number
  default     = 2

  validation {
    condition     = var.agent_count >= 2 && var.agent_count <= 20 && floor(var.agent_count) == var.agent_count
    error_message = "agent_count must be a whole number between 2 and 20."
  }
}

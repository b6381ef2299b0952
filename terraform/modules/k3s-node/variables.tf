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
  description = "Size in GiB of the encrypted EBS data volume that holds every PersistentVolume (MLflow registry and artifacts, the prediction-log spool) and survives instance replacement. It can grow later (the filesystem is grown at the next boot of a new node, or by `sudo resize2fs` through SSM), never shrink."
  type        = number
  default     = 20

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

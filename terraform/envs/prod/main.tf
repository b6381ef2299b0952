# Production: a k3s server (with the data volume) and an autoscaling group of agents in the default
# VPC's first subnet.

data "aws_vpc" "default" {
  default = true
}

data "aws_subnets" "default" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default.id]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }
}

module "k3s_node" {
  source = "../../modules/k3s-node"

  name               = "cali-housing-prod"
  vpc_id             = data.aws_vpc.default.id
  subnet_id          = sort(data.aws_subnets.default.ids)[0]
  admin_cidrs        = var.admin_cidrs
  http_ingress_cidrs = var.http_ingress_cidrs
  ingress_enabled    = var.ingress_enabled
  instance_type      = var.instance_type
  repo_url           = var.repo_url
  repo_revision      = var.repo_revision
  # values-prod.yaml's mlflow.server.artifacts.s3Uri points into this bucket.
  artifact_bucket_name         = var.artifact_bucket_name
  k3s_token                    = var.k3s_token
  agent_instance_type          = var.agent_instance_type
  agent_count                  = var.agent_count
  data_snapshot_retention_days = var.data_snapshot_retention_days
  tags                         = { environment = "prod" }
}

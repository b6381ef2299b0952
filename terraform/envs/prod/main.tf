# Production: one k3s node in the default VPC's first subnet.

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
  tags               = { environment = "prod" }
}

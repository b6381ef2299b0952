# One EC2 node running k3s; cloud-init installs a pinned k3s, a pinned Argo CD and applies the root
# Application, after which the cluster follows git. Shell access is through SSM (no SSH port).
#
# The node itself is disposable (a new AMI, a new k3s version or any change of user data replaces
# it), its state is not: the PersistentVolumes of the stable class (the MLflow server's registry and
# artifacts, the monitor's reports, MLflow's upgrade backups) live on a separate encrypted EBS data
# volume that outlives the instance (see "the data volume" below), and the inference prediction-log
# spool lives on EFS, which every node mounts (spool_efs.tf).

data "aws_ami" "ubuntu" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# The subnet fixes the availability zone of both the node and its data volume. Taking the zone from
# the subnet, not from the instance, keeps the volume's zone known at plan time when the instance is
# being replaced (an unknown zone would plan to replace the volume, which prevent_destroy refuses).
data "aws_subnet" "node" {
  id = var.subnet_id
}

locals {
  ami_id       = var.ami_id != null ? var.ami_id : data.aws_ami.ubuntu[0].id
  raw_repo_url = replace(trimsuffix(var.repo_url, ".git"), "https://github.com/", "https://raw.githubusercontent.com/")
}

# ---- network -------------------------------------------------------------------------------

resource "aws_security_group" "node" {
  name        = "${var.name}-k3s-node"
  description = "k3s node: Kubernetes API from admin CIDRs, HTTP(S) from the configured CIDRs"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-k3s-node" })
}

resource "aws_vpc_security_group_ingress_rule" "kube_api" {
  for_each          = toset(var.admin_cidrs)
  security_group_id = aws_security_group.node.id
  description       = "Kubernetes API from an admin CIDR"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 6443
  to_port           = 6443
}

# 80/443 open only while an ingress serves them: the chart renders none, so by default no port but the
# API's is reachable from outside, whatever http_ingress_cidrs holds.
resource "aws_vpc_security_group_ingress_rule" "http" {
  for_each = var.ingress_enabled ? {
    for pair in setproduct(var.http_ingress_cidrs, [80, 443]) : "${pair[0]}-${pair[1]}" => pair
  } : {}
  security_group_id = aws_security_group.node.id
  description       = "Ingress (Traefik) port ${each.value[1]}"
  cidr_ipv4         = each.value[0]
  ip_protocol       = "tcp"
  from_port         = each.value[1]
  to_port           = each.value[1]
}

resource "aws_vpc_security_group_egress_rule" "all" {
  #checkov:skip=CKV_AWS_382:The node pulls images (GHCR), charts and git from the internet and reaches Supabase and Telegram; their addresses are not stable.
  security_group_id = aws_security_group.node.id
  description       = "Outbound: image registries, GitHub, Supabase, Telegram, AWS APIs (SSM)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

# ---- IAM: SSM only --------------------------------------------------------------------------

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-k3s-node"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-k3s-node"
  role = aws_iam_role.node.name
  tags = var.tags
}

# ---- the node -------------------------------------------------------------------------------

# Allocated before the instance so cloud-init can put the address in the API certificate.
resource "aws_eip" "node" {
  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-k3s-node" })
}

resource "aws_instance" "node" {
  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [aws_security_group.node.id]
  iam_instance_profile   = aws_iam_instance_profile.node.name
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
  }

  # The root volume holds the OS, k3s itself and the image cache: all of it is rebuilt by cloud-init,
  # so it goes with the instance. Nothing that must survive is kept on it (see the data volume).
  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    delete_on_termination = true
    # Tags on the root device only: `volume_tags` on the instance would also claim the separately
    # managed data volume and fight aws_ebs_volume.data's tags on every plan.
    tags = merge(var.tags, { Name = "${var.name}-k3s-node-root" })
  }

  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    k3s_version             = var.k3s_version
    argocd_version          = var.argocd_version
    public_ip               = aws_eip.node.public_ip
    project_url             = "${local.raw_repo_url}/${var.repo_revision}/argocd/project.yaml"
    root_app_url            = "${local.raw_repo_url}/${var.repo_revision}/argocd/root.yaml"
    data_volume_id          = aws_ebs_volume.data.id
    local_storage_dir       = local.local_storage_dir
    token_parameter         = aws_ssm_parameter.k3s_token.name
    region                  = data.aws_region.current.name
    etcd_s3_bucket          = aws_s3_bucket.artifacts.id
    etcd_s3_folder          = var.etcd_snapshot_prefix
    etcd_snapshot_cron      = var.etcd_snapshot_cron
    etcd_snapshot_retention = var.etcd_snapshot_retention
    # The spool's PersistentVolumes (one per environment): file system and access point ids.
    spool_file_system_id       = aws_efs_file_system.spool.id
    spool_access_point_prod    = aws_efs_access_point.spool["prod"].id
    spool_access_point_staging = aws_efs_access_point.spool["staging"].id
  })
  # Any change of the bootstrap replaces the node; with the data volume that is safe by design.
  user_data_replace_on_change = true
  # cloud-init reads the token and k3s writes snapshots with the role's policies: in place first.
  depends_on = [aws_iam_role_policy.node_token, aws_iam_role_policy.etcd_snapshots]

  tags = merge(var.tags, { Name = "${var.name}-k3s-node" })

  lifecycle {
    ignore_changes = [ami]
  }
}

resource "aws_eip_association" "node" {
  instance_id   = aws_instance.node.id
  allocation_id = aws_eip.node.id
}

# ---- the data volume -------------------------------------------------------------------------

# k3s's local-path provisioner keeps every PersistentVolume as a folder under local_storage_dir.
# On the root volume those folders would die with the instance (delete_on_termination, and
# user_data_replace_on_change replaces the instance on every bootstrap change). This volume is
# mounted there by cloud-init before k3s starts, and it is neither deleted with the instance nor
# by Terraform:
# - prevent_destroy makes any plan that would destroy it (including a replacement) fail. To retire
#   it on purpose, snapshot it, remove the lifecycle block and apply.
# - Detaching it on an instance replacement stops the instance first (clean unmount, no dirty
#   filesystem); the new instance's cloud-init mounts the same filesystem again and never formats a
#   device that already holds one.
# It lives in one availability zone and is not a backup: snapshot it (AWS Backup or DLM).
#
# Migration from a node without this volume: the first apply replaces the node, and the folders of
# the old root volume go with it. Copy /var/lib/rancher/k3s/storage off the old node (through SSM)
# before applying, and into the new claims' folders afterwards.
locals {
  local_storage_dir = "/var/lib/rancher/k3s/storage"
}

resource "aws_ebs_volume" "data" {
  availability_zone = data.aws_subnet.node.availability_zone
  type              = "gp3"
  size              = var.data_volume_size_gb
  encrypted         = true
  kms_key_id        = var.data_volume_kms_key_id

  tags = merge(var.tags, { Name = "${var.name}-k3s-data", role = "k3s-local-path-storage" })

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_volume_attachment" "data" {
  device_name = "/dev/sdf" # /dev/nvme?n1 on Nitro instances: cloud-init finds it by volume id
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.node.id
  # On replacement or destroy of the instance: stop it (k3s stops, the filesystem is unmounted
  # cleanly), then detach. Never force_detach: that is a yanked disk.
  stop_instance_before_detaching = true
}

# The inference prediction spool of prod and staging on EFS (ReadWriteMany), so that inference
# replicas spread over the agents while the spool still outlives any pod and any node.
#
# On the data volume (ReadWriteOnce, local-path on the server) every replica had to run on the
# server. EFS is mounted by every node at once: each replica spools into its own folder and replays
# the folders of servers that stopped, wherever they ran (services/inference/spool.py).
#
# Static provisioning: one access point per environment here, one PersistentVolume per environment
# written by the server's cloud-init (templates/cloud-init.yaml.tftpl) with this file system's and
# access point's ids, bound to the chart's spool claim by claimRef. The EFS CSI driver (an Argo CD
# Application, argocd/apps/platform-efs-csi-driver.yaml) runs its node DaemonSet only: with static
# volumes there is nothing to create, so no controller and no IAM for one.
#
# Who may mount what:
# - network: the mount target admits NFS (TCP 2049) from the node security group only;
# - IAM: the PVs mount with efs-utils' `iam` option, so the node's instance role signs the mount
#   (the node DaemonSet runs hostNetwork: IMDSv2 with hop limit 1 answers it). The file system policy
#   and each role's own policy grant ClientMount and ClientWrite through the two access points only:
#   nobody mounts the file system's root, and nobody has ClientRootAccess;
# - the access point: every operation runs as uid/gid 10001 (the inference image's USER) inside
#   /cali-housing-<env>/spool, created 0700 for that uid on first use. Prod cannot see staging.
# - transport: the policy refuses any connection without TLS (the PVs mount with `tls`).
#
# One mount target, in var.subnet_id: the module places the server and the agents in that one subnet
# (one availability zone), so a mount target elsewhere would serve no node. EFS itself stores the
# data across the region's zones (Regional storage class) whatever the mount targets. efs-utils finds
# the mount target by the file system's DNS name: the VPC must resolve it (enableDnsSupport and
# enableDnsHostnames, as the default VPC that terraform/envs/prod uses does).

locals {
  # Environment -> the namespace Argo CD installs it into (argocd/apps/cali-housing-<env>.yaml).
  spool_environments = {
    prod    = "cali-housing-prod"
    staging = "cali-housing-staging"
  }
  # The inference image's USER (services/inference/Dockerfile): the spool's files belong to it.
  spool_uid = 10001
}

resource "aws_efs_file_system" "spool" {
  creation_token = "${var.name}-inference-spool"
  encrypted      = true
  # null: the account's aws/elasticfilesystem key (encrypted either way), as for the data volume.
  kms_key_id       = var.spool_kms_key_id
  performance_mode = "generalPurpose"
  # Elastic, not bursting: the spool is idle until Postgres is unreachable, then takes every
  # replica's rows at once (~2,700 rows/s x 217 B = ~0.6 MB/s per pod at the measured peak, three
  # pods ~1.8 MB/s). Bursting's baseline scales with the size stored (50 KiB/s per GiB: a few KiB/s
  # for a near-empty spool) and lives on credits; elastic has no baseline to run out of and bills
  # per GB moved, cents for a spool that moves nothing on most days.
  throughput_mode = "elastic"

  tags = merge(var.tags, { Name = "${var.name}-inference-spool" })

  # Rows not yet replayed live here: a plan that destroys the file system fails. To retire it on
  # purpose, drain the spools (every replica replayed), remove this block and apply.
  lifecycle {
    prevent_destroy = true
  }
}

# No AWS Backup: the spool holds only rows not yet replayed into Postgres (the minutes or hours of a
# database outage), and a restored copy would replay rows long written. The database is backed up.
resource "aws_efs_backup_policy" "spool" {
  file_system_id = aws_efs_file_system.spool.id

  backup_policy {
    status = "DISABLED"
  }
}

resource "aws_security_group" "spool" {
  name        = "${var.name}-inference-spool"
  description = "EFS mount target of the inference spool: NFS from the k3s nodes only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-inference-spool" })
}

resource "aws_vpc_security_group_ingress_rule" "spool_nfs" {
  security_group_id            = aws_security_group.spool.id
  description                  = "NFS (TLS through efs-utils' stunnel) from the k3s nodes"
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}

# No egress rule: a mount target answers connections, it never opens one (security groups are
# stateful), so the group allows no outbound traffic at all.

resource "aws_efs_mount_target" "spool" {
  file_system_id  = aws_efs_file_system.spool.id
  subnet_id       = var.subnet_id
  security_groups = [aws_security_group.spool.id]
}

resource "aws_efs_access_point" "spool" {
  for_each       = local.spool_environments
  file_system_id = aws_efs_file_system.spool.id

  # Every NFS operation through this access point runs as the inference user, whatever uid the
  # client claims.
  posix_user {
    uid = local.spool_uid
    gid = local.spool_uid
  }

  # The environment's folder is the root the client sees; EFS creates it on first use, owned by the
  # inference user and closed to everyone else.
  root_directory {
    path = "/${each.value}/spool"

    creation_info {
      owner_uid   = local.spool_uid
      owner_gid   = local.spool_uid
      permissions = "0700"
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-inference-spool-${each.key}" })
}

# ---- IAM: mount and write through the access points, TLS only ----------------------------------

data "aws_iam_policy_document" "spool_mount" {
  statement {
    sid       = "MountThroughTheAccessPoints"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.spool.arn]

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [for ap in aws_efs_access_point.spool : ap.arn]
    }
  }
}

# The server and the agents: an inference replica may run on any of them.
resource "aws_iam_role_policy" "node_spool" {
  name   = "inference-spool"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.spool_mount.json
}

resource "aws_iam_role_policy" "agent_spool" {
  name   = "inference-spool"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.spool_mount.json
}

data "aws_iam_policy_document" "spool_file_system" {
  statement {
    sid       = "NodesMountThroughTheAccessPoints"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.spool.arn]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node.arn, aws_iam_role.agent.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [for ap in aws_efs_access_point.spool : ap.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.spool.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_efs_file_system_policy" "spool" {
  file_system_id = aws_efs_file_system.spool.id
  policy         = data.aws_iam_policy_document.spool_file_system.json
}

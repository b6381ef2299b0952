# What survives the loss of the node, besides the data volume itself:
# - the artifact bucket: MLflow's model artifacts (prefix mlflow/, prod's s3Uri) and the k3s
#   datastore's snapshots (prefix var.etcd_snapshot_prefix), versioned, so a deleted or overwritten
#   object comes back within var.artifact_noncurrent_days;
# - daily snapshots of the data volume (DLM), kept var.data_snapshot_retention_days: the volume is
#   in one availability zone and a snapshot is the way back from a lost or broken volume.

data "aws_region" "current" {}

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is not worth a second bucket here; versioning covers deletes and overwrites.
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket; CloudTrail data events are the audit trail if needed.
  #checkov:skip=CKV2_AWS_62:No consumer for object event notifications.
  bucket = var.artifact_bucket_name
  tags   = merge(var.tags, { Name = var.artifact_bucket_name })

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.artifact_bucket_kms_key_id
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.artifact_noncurrent_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "artifacts_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.artifacts.arn,
      "${aws_s3_bucket.artifacts.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  policy = data.aws_iam_policy_document.artifacts_tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

# ---- k3s datastore snapshots: the server writes them under one prefix, and only there ----------

data "aws_iam_policy_document" "etcd_snapshots" {
  statement {
    sid       = "ListSnapshotPrefix"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.artifacts.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.etcd_snapshot_prefix}", "${var.etcd_snapshot_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadWriteSnapshots"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/${var.etcd_snapshot_prefix}/*"]
  }
}

resource "aws_iam_role_policy" "etcd_snapshots" {
  name   = "etcd-snapshots"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.etcd_snapshots.json
}

# ---- daily snapshots of the data volume ---------------------------------------------------------

data "aws_iam_policy_document" "assume_dlm" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["dlm.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "dlm" {
  name               = "${var.name}-dlm"
  assume_role_policy = data.aws_iam_policy_document.assume_dlm.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "dlm" {
  role       = aws_iam_role.dlm.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
}

resource "aws_dlm_lifecycle_policy" "data" {
  description        = "${var.name}: daily snapshots of the k3s data volume"
  execution_role_arn = aws_iam_role.dlm.arn
  state              = "ENABLED"

  policy_details {
    resource_types = ["VOLUME"]
    # The data volume's own Name tag: only that volume, never the root volumes.
    target_tags = { Name = "${var.name}-k3s-data" }

    schedule {
      name      = "daily"
      copy_tags = true

      create_rule {
        interval      = 24
        interval_unit = "HOURS"
        times         = [var.data_snapshot_time_utc]
      }

      retain_rule {
        count = var.data_snapshot_retention_days
      }

      tags_to_add = { SnapshotCreator = "dlm" }
    }
  }

  tags = var.tags
}

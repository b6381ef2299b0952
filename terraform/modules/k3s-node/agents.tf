# Agent nodes: an autoscaling group of at least two, joining the server with the token from SSM
# Parameter Store. Pods without a claim on the data volume (the trainer Jobs, the MLflow server with
# S3 artifacts, inference, whose spool is on EFS: spool_efs.tf) run here and spread; losing an agent
# is a reschedule, and the group replaces the instance. Pods with a claim of the stable storage class
# stay on the server: it admits only nodes labelled cali-housing/data-volume=true (the server, which
# holds the data volume).

# The join token: read at boot by the server (k3s --token) and by every agent, never in user data
# (readable by anyone with ec2:DescribeInstanceAttribute).
resource "aws_ssm_parameter" "k3s_token" {
  #checkov:skip=CKV_AWS_337:The account's aws/ssm key encrypts it; a customer-managed key adds a key policy to keep in step for one parameter.
  name        = "/${var.name}/k3s/token"
  description = "k3s join token of ${var.name} (server and agents)"
  type        = "SecureString"
  value       = var.k3s_token
  tags        = var.tags
}

data "aws_iam_policy_document" "read_token" {
  statement {
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.k3s_token.arn]
  }
}

resource "aws_iam_role_policy" "node_token" {
  name   = "k3s-token"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.read_token.json
}

# Agents: SSM for the shell, the token to join, nothing else (no snapshot bucket).
resource "aws_iam_role" "agent" {
  name               = "${var.name}-k3s-agent"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "agent_ssm" {
  role       = aws_iam_role.agent.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "agent_token" {
  name   = "k3s-token"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.read_token.json
}

resource "aws_iam_instance_profile" "agent" {
  name = "${var.name}-k3s-agent"
  role = aws_iam_role.agent.name
  tags = var.tags
}

# Nodes of the cluster reach each other on every port (API 6443, kubelet 10250, flannel VXLAN
# 8472/udp, pod-to-pod traffic); nothing outside the group does.
resource "aws_vpc_security_group_ingress_rule" "cluster" {
  security_group_id            = aws_security_group.node.id
  description                  = "Between the nodes of the cluster (API, kubelet, flannel)"
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "-1"
}

resource "aws_launch_template" "agent" {
  name_prefix            = "${var.name}-k3s-agent-"
  image_id               = local.ami_id
  instance_type          = var.agent_instance_type
  vpc_security_group_ids = [aws_security_group.node.id]
  ebs_optimized          = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.agent.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/sda1"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size_gb
      encrypted             = true
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/cloud-init-agent.yaml.tftpl", {
    k3s_version     = var.k3s_version
    server_url      = "https://${aws_instance.node.private_ip}:6443"
    token_parameter = aws_ssm_parameter.k3s_token.name
    region          = data.aws_region.current.name
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-k3s-agent" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "agents" {
  name                = "${var.name}-k3s-agents"
  min_size            = var.agent_count
  max_size            = var.agent_count + 1
  desired_capacity    = var.agent_count
  vpc_zone_identifier = [var.subnet_id]
  health_check_type   = "EC2"

  launch_template {
    id      = aws_launch_template.agent.id
    version = aws_launch_template.agent.latest_version
  }

  # A new template (new AMI, k3s version, or a replaced server's address) rolls the agents one at a
  # time: the group keeps at least agent_count - 1 of them, so inference keeps a node to run on.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = "${var.name}-k3s-agent" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

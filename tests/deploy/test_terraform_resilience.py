"""Terraform: losing the node is an event, not an outage.

Checked on the sources in the terms a plan would show (resource arguments and the rendered
cloud-init), because a plan needs AWS: the data sources (AMI, subnet, region) call its API, and the
only provider available offline (aws 3.39, see test_terraform.py) predates half of these resources.
What AWS does with them (DLM taking snapshots, k3s writing to S3 with the instance role, an agent
joining) is not exercised here.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .test_terraform import MODULE, TF, block, rendered_cloud_init, write_files

AGENT_TEMPLATE = MODULE / "templates" / "cloud-init-agent.yaml.tftpl"
STORAGE_CLASS = "/var/lib/rancher/k3s/server/manifests/cali-housing-storage.yaml"


def module_text() -> str:
    return "\n".join(p.read_text() for p in sorted(MODULE.glob("*.tf")))


def argument(body: str, name: str) -> str:
    match = re.search(rf"^\s+{name}\s+=\s+(.+?)\s*(?:#.*)?$", body, re.MULTILINE)
    assert match, f"{name} not set in:\n{body}"
    return match.group(1)


def k3s_server_config() -> dict[str, Any]:
    config = yaml.safe_load(write_files(rendered_cloud_init())["/etc/rancher/k3s/config.yaml"])
    assert isinstance(config, dict)
    return config


def test_artifact_bucket_is_versioned_encrypted_private_and_expires_old_versions() -> None:
    text = module_text()
    bucket = block(text, 'resource "aws_s3_bucket" "artifacts"')
    assert re.search(r"lifecycle \{\s+prevent_destroy\s+=\s+true\s+\}", bucket)
    versioning = block(text, 'resource "aws_s3_bucket_versioning" "artifacts"')
    assert argument(versioning, "status") == '"Enabled"'
    sse = block(text, 'resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts"')
    assert argument(sse, "sse_algorithm") == '"aws:kms"'
    public = block(text, 'resource "aws_s3_bucket_public_access_block" "artifacts"')
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert argument(public, flag) == "true", flag
    lifecycle = block(text, 'resource "aws_s3_bucket_lifecycle_configuration" "artifacts"')
    assert argument(lifecycle, "status") == '"Enabled"' and "filter {}" in lifecycle
    assert argument(lifecycle, "noncurrent_days") == "var.artifact_noncurrent_days"
    policy = block(text, 'data "aws_iam_policy_document" "artifacts_tls_only"')
    assert '"aws:SecureTransport"' in policy and argument(policy, "effect") == '"Deny"'
    # Prod's MLflow writes into this bucket: values-prod.yaml and the env's default name agree.
    prod_vars = block((TF / "envs" / "prod" / "variables.tf").read_text(), 'variable "artifact_bucket_name"')
    name = argument(prod_vars, "default").strip('"')
    prod_values = yaml.safe_load((TF.parent / "charts" / "cali-housing" / "values-prod.yaml").read_text())
    assert prod_values["mlflow"]["server"]["artifacts"]["s3Uri"].startswith(f"s3://{name}/")


def test_data_volume_is_snapshotted_daily_with_a_retention_variable() -> None:
    text = module_text()
    policy = block(text, 'resource "aws_dlm_lifecycle_policy" "data"')
    assert argument(policy, "state") == '"ENABLED"'
    assert re.search(r'resource_types\s+=\s+\["VOLUME"\]', policy)
    assert (argument(policy, "interval"), argument(policy, "interval_unit")) == ("24", '"HOURS"')
    assert argument(policy, "count") == "var.data_snapshot_retention_days"
    # DLM picks volumes by tag: the target is exactly the data volume's Name tag.
    target = re.search(r"target_tags\s+=\s+\{\s*Name\s+=\s+(\S+)\s*\}", policy)
    volume = block(text, 'resource "aws_ebs_volume" "data"')
    own = re.search(r"Name\s+=\s+(\"[^\"]+\")", volume)
    assert target and own and target.group(1) == own.group(1)
    variables = (MODULE / "variables.tf").read_text()
    retention = block(variables, 'variable "data_snapshot_retention_days"')
    assert "validation" in retention and re.search(r"default\s+=\s+\d+", retention)
    prod = (TF / "envs" / "prod" / "main.tf").read_text()
    assert re.search(r"data_snapshot_retention_days\s+=\s+var\.data_snapshot_retention_days", prod)


def test_k3s_datastore_is_etcd_snapshotted_to_the_bucket_prefix() -> None:
    config = k3s_server_config()
    assert config["cluster-init"] is True and config["etcd-s3"] is True
    # No static key: k3s uses the instance role when no access key is given.
    assert not {"etcd-s3-access-key", "etcd-s3-secret-key"} & set(config)
    call = re.search(r"templatefile\([^,]+cloud-init\.yaml\.tftpl\", \{(.*?)\}\)", module_text(), re.DOTALL)
    assert call
    passed = dict(re.findall(r"^\s+(\w+)\s+=\s+(.+?)\s*$", call.group(1), re.MULTILINE))
    assert (
        config["etcd-s3-bucket"] == "<etcd_s3_bucket>"
        and passed["etcd_s3_bucket"] == "aws_s3_bucket.artifacts.id"
    )
    assert (
        config["etcd-s3-folder"] == "<etcd_s3_folder>"
        and passed["etcd_s3_folder"] == "var.etcd_snapshot_prefix"
    )
    # The role may touch objects under the prefix only, and list only that prefix.
    iam = block(module_text(), 'data "aws_iam_policy_document" "etcd_snapshots"')
    objects = re.findall(r"resources\s+=\s+\[(.*?)\]", iam)
    assert objects == [
        "aws_s3_bucket.artifacts.arn",
        '"${aws_s3_bucket.artifacts.arn}/${var.etcd_snapshot_prefix}/*"',
    ]
    assert '"s3:prefix"' in iam and "s3:*" not in iam
    attach = block(module_text(), 'resource "aws_iam_role_policy" "etcd_snapshots"')
    assert argument(attach, "role") == "aws_iam_role.node.id", "the server only, not the agents"


def test_agents_join_from_an_autoscaling_group_of_at_least_two() -> None:
    text = module_text()
    group = block(text, 'resource "aws_autoscaling_group" "agents"')
    assert argument(group, "min_size") == "var.agent_count"
    assert argument(group, "version") == "aws_launch_template.agent.latest_version"
    assert argument(group, "strategy") == '"Rolling"', "a new template rolls the agents"
    count = block((MODULE / "variables.tf").read_text(), 'variable "agent_count"')
    assert "var.agent_count >= 2" in count
    template = block(text, 'resource "aws_launch_template" "agent"')
    assert argument(template, "http_tokens") == '"required"' and argument(template, "encrypted") == "true"
    assert argument(template, "server_url") == '"https://${aws_instance.node.private_ip}:6443"'
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", AGENT_TEMPLATE.read_text()))
    passed = set(re.findall(r"^\s+(\w+)\s+=", template.split("templatefile(")[1].split("}))")[0], re.M))
    assert used == passed, "templatefile() and the agent template disagree on variables"


def test_join_token_comes_from_ssm_never_from_user_data() -> None:
    text = module_text()
    parameter = block(text, 'resource "aws_ssm_parameter" "k3s_token"')
    assert argument(parameter, "type") == '"SecureString"' and argument(parameter, "value") == "var.k3s_token"
    for template in (MODULE / "templates").glob("*.tftpl"):
        assert "k3s_token" not in template.read_text(), template
    token = block((MODULE / "variables.tf").read_text(), 'variable "k3s_token"')
    assert re.search(r"sensitive\s+=\s+true", token)
    agent = yaml.safe_load(AGENT_TEMPLATE.read_text())
    runcmd = agent["runcmd"]
    fetch = next(i for i, c in enumerate(runcmd) if "ssm get-parameter" in c)
    join = next(i for i, c in enumerate(runcmd) if "get.k3s.io" in c)
    assert runcmd[0] == "set -e" and fetch < join
    assert "K3S_TOKEN_FILE=/etc/rancher/k3s/token" in runcmd[join] and runcmd[join].endswith("sh -s - agent")
    server = rendered_cloud_init()["runcmd"]
    server_fetch = next(i for i, c in enumerate(server) if "ssm get-parameter" in c)
    assert server_fetch < next(i for i, c in enumerate(server) if "get.k3s.io" in c)
    assert k3s_server_config()["token-file"] == "/etc/rancher/k3s/token"


def test_claims_stay_on_the_node_that_holds_the_data_volume() -> None:
    """Agents have no data volume: the stable class admits only the server's label."""
    (label,) = k3s_server_config()["node-label"]
    key, value = label.split("=")
    storage_class = yaml.safe_load(write_files(rendered_cloud_init())[STORAGE_CLASS])
    (term,) = storage_class["allowedTopologies"]
    assert term["matchLabelExpressions"] == [{"key": key, "values": [value]}]
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert "node-label" not in AGENT_TEMPLATE.read_text()

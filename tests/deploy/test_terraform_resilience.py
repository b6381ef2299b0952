"""Terraform: losing the node is an event, not an outage.

Checked on the sources in the terms a plan would show (resource arguments and the rendered
cloud-init), because a plan needs AWS: the data sources (AMI, subnet, region) call its API, and the
only provider available offline (aws 3.39, see test_terraform.py) predates half of these resources.
What AWS does with them (DLM taking snapshots, k3s writing to S3 with the instance role, an agent
joining) is not exercised here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from .helpers import REPO, helm_template
from .test_chart_safety import quantity
from .test_terraform import MODULE, TF, block, rendered_cloud_init, template_vars, write_files

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


# ---- the inference spool on EFS ------------------------------------------------------------------
# Checked on the sources and on the rendered cloud-init and chart. Contract only where AWS acts: no EFS
# mounts here, so that the access point really maps every operation to uid 10001, that the policy
# really refuses a mount without TLS or IAM, and that the driver mounts with these options are AWS's
# and the driver's documented behaviour, not exercised. The binding itself (PV to the chart's claim,
# pods spread over nodes) runs on a real API server in tests/cluster/test_spool_spread.py.

SPOOL_MANIFEST = "/var/lib/rancher/k3s/server/manifests/cali-housing-spool-efs.yaml"
ENVIRONMENTS = ("prod", "staging")


def spool_text() -> str:
    return (MODULE / "spool_efs.tf").read_text()


def image_user() -> tuple[int, int]:
    """The inference image's USER uid:gid (the last USER of services/inference/Dockerfile)."""
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", (REPO / "services/inference/Dockerfile").read_text(), re.M)
    assert users, "the inference image names no numeric USER"
    uid, gid = users[-1]
    return int(uid), int(gid)


def argocd_app(env: str) -> dict[str, Any]:
    app = yaml.safe_load((REPO / "argocd" / "apps" / f"cali-housing-{env}.yaml").read_text())
    assert isinstance(app, dict)
    return app


def spool_manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(write_files(rendered_cloud_init())[SPOOL_MANIFEST]) if d]


def test_spool_file_system_is_encrypted_elastic_and_kept() -> None:
    fs = block(spool_text(), 'resource "aws_efs_file_system" "spool"')
    assert argument(fs, "encrypted") == "true"
    # As the data volume and the bucket: a customer key when given, AWS's own key otherwise.
    assert argument(fs, "kms_key_id") == "var.spool_kms_key_id"
    assert re.search(
        r"variable \"spool_kms_key_id\" \{.*?default\s+=\s+null", (MODULE / "variables.tf").read_text(), re.S
    )
    assert argument(fs, "throughput_mode") == '"elastic"'
    assert re.search(r"lifecycle \{\s+prevent_destroy\s+=\s+true\s+\}", fs)


def test_spool_mount_target_admits_only_nfs_from_the_node_group() -> None:
    text = module_text()
    target = block(text, 'resource "aws_efs_mount_target" "spool"')
    assert argument(target, "subnet_id") == "var.subnet_id", "the one subnet (zone) of every node"
    assert argument(target, "security_groups") == "[aws_security_group.spool.id]"
    rules = re.findall(
        r'^resource "(aws_vpc_security_group_(?:ingress|egress)_rule)" "(\w+)" \{\n(.*?)^\}',
        text,
        re.M | re.S,
    )
    on_spool = [(kind, name, body) for kind, name, body in rules if "aws_security_group.spool.id" in body]
    assert [(kind, name) for kind, name, _ in on_spool] == [
        ("aws_vpc_security_group_ingress_rule", "spool_nfs")
    ], "one rule in, none out"
    (_, _, nfs) = on_spool[0]
    assert argument(nfs, "referenced_security_group_id") == "aws_security_group.node.id"
    assert "cidr_ipv4" not in nfs and "cidr_ipv6" not in nfs
    assert argument(nfs, "ip_protocol") == '"tcp"'
    assert argument(nfs, "from_port") == argument(nfs, "to_port") == "2049"
    assert not re.search(
        r"^\s+(ingress|egress) \{", block(text, 'resource "aws_security_group" "spool"'), re.M
    )


def test_access_points_confine_each_environment_to_its_folder_as_the_image_user() -> None:
    text = spool_text()
    uid, gid = image_user()
    assert uid == gid == int(argument(block(text, "locals"), "spool_uid"))
    access_point = block(text, 'resource "aws_efs_access_point" "spool"')
    assert argument(access_point, "for_each") == "local.spool_environments"
    for name in ("uid", "gid", "owner_uid", "owner_gid"):
        assert argument(access_point, name) == "local.spool_uid", name
    assert argument(access_point, "permissions") == '"0700"'
    assert argument(access_point, "path") == '"/${each.value}/spool"'
    environments = dict(re.findall(r'^\s+(\w+)\s+=\s+"([\w-]+)"$', block(text, "locals"), re.M))
    # Each access point's folder is named after the namespace Argo CD installs that environment into.
    assert environments == {env: argocd_app(env)["spec"]["destination"]["namespace"] for env in ENVIRONMENTS}


def test_spool_mounts_need_tls_and_a_node_role_through_an_access_point() -> None:
    text = spool_text()
    mount = block(text, 'data "aws_iam_policy_document" "spool_mount"')
    actions = '["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]'
    assert argument(mount, "actions") == actions, "no ClientRootAccess"
    assert argument(mount, "resources") == "[aws_efs_file_system.spool.arn]"
    assert argument(mount, "variable") == '"elasticfilesystem:AccessPointArn"'
    # On both roles: a replica may land on the server or any agent.
    roles = {
        argument(block(text, f'resource "aws_iam_role_policy" "{name}"'), "role"): argument(
            block(text, f'resource "aws_iam_role_policy" "{name}"'), "policy"
        )
        for name in ("node_spool", "agent_spool")
    }
    assert roles == dict.fromkeys(
        ("aws_iam_role.node.id", "aws_iam_role.agent.id"), "data.aws_iam_policy_document.spool_mount.json"
    )
    policy = block(text, 'data "aws_iam_policy_document" "spool_file_system"')
    allow, deny = policy.split('sid       = "DenyInsecureTransport"')
    assert argument(allow, "actions") == actions
    assert argument(allow, "identifiers") == "[aws_iam_role.node.arn, aws_iam_role.agent.arn]"
    assert argument(allow, "variable") == '"elasticfilesystem:AccessPointArn"'
    assert argument(deny, "effect") == '"Deny"' and argument(deny, "variable") == '"aws:SecureTransport"'
    assert argument(deny, "values") == '["false"]'
    attached = block(text, 'resource "aws_efs_file_system_policy" "spool"')
    assert argument(attached, "policy") == "data.aws_iam_policy_document.spool_file_system.json"


def test_cloud_init_spool_volumes_bind_the_charts_claims(tool: Callable[[str], str]) -> None:
    """Each environment's PersistentVolume reserves (claimRef) the spool claim the chart renders for that
    Argo CD Application (its release name and namespace) and admits it: same class, its access mode,
    at least its size. Its handle is that environment's access point; it mounts with TLS and IAM."""
    docs = spool_manifests()
    (storage_class,) = [d for d in docs if d["kind"] == "StorageClass"]
    assert storage_class["provisioner"] == "efs.csi.aws.com"
    assert storage_class["reclaimPolicy"] == "Retain" and storage_class["volumeBindingMode"] == "Immediate"
    volumes = {d["spec"]["claimRef"]["namespace"]: d for d in docs if d["kind"] == "PersistentVolume"}
    assert len(volumes) == len(ENVIRONMENTS)
    passed = template_vars()
    assert passed["spool_file_system_id"] == "aws_efs_file_system.spool.id"
    for env in ENVIRONMENTS:
        app = argocd_app(env)
        namespace = app["spec"]["destination"]["namespace"]
        assert app["spec"]["source"]["helm"]["releaseName"] == "cali-housing", "helm_template's release name"
        values = [f for f in app["spec"]["source"]["helm"]["valueFiles"] if f != "values.yaml"]
        args = [a for f in values for a in ("-f", str(REPO / "charts" / "cali-housing" / f))]
        proc = helm_template(tool("helm"), args, namespace=namespace)
        assert proc.returncode == 0, proc.stderr
        (claim,) = [
            d
            for d in yaml.safe_load_all(proc.stdout)
            if d
            and d["kind"] == "PersistentVolumeClaim"
            and d["metadata"]["name"].endswith("-inference-spool")
        ]
        volume = volumes[namespace]["spec"]
        assert volume["claimRef"] == {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": claim["metadata"]["namespace"],
            "name": claim["metadata"]["name"],
        }
        assert (
            claim["spec"]["storageClassName"]
            == volume["storageClassName"]
            == storage_class["metadata"]["name"]
        )
        assert set(claim["spec"]["accessModes"]) <= set(volume["accessModes"]) == {"ReadWriteMany"}
        requested = quantity(claim["spec"]["resources"]["requests"]["storage"])
        assert quantity(volume["capacity"]["storage"]) >= requested, (
            "a claim binds to a volume at least its size"
        )
        assert volume["persistentVolumeReclaimPolicy"] == "Retain"
        csi = volume["csi"]
        assert csi["driver"] == storage_class["provisioner"]
        assert csi["volumeHandle"] == f"<spool_file_system_id>::<spool_access_point_{env}>"
        assert passed[f"spool_access_point_{env}"] == f'aws_efs_access_point.spool["{env}"].id'
        assert csi["volumeAttributes"] == {"encryptInTransit": "true"} and volume["mountOptions"] == ["iam"]

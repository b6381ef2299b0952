"""Terraform: formatted, valid offline (against the bundled aws 3.39 schema), and safe by construction."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import REPO, run

TF = REPO / "terraform"
ROOTS = ["bootstrap", "envs/prod"]
# Diagnostics that only mean "newer than the aws 3.39.0 schema available offline";
# our code targets aws ~> 5.0. Anything else fails.
NEWER_THAN_339 = {
    ("Invalid resource type", "aws_s3_bucket_versioning"),
    ("Invalid resource type", "aws_s3_bucket_server_side_encryption_configuration"),
    ("Invalid resource type", "aws_s3_bucket_lifecycle_configuration"),
    ("Invalid resource type", "aws_vpc_security_group_ingress_rule"),
    ("Invalid resource type", "aws_vpc_security_group_egress_rule"),
    ("Invalid data source", "aws_subnets"),
    ("Invalid resource type", "aws_efs_backup_policy"),  # aws 3.41
    ("expected throughput_mode to be one of [bursting provisioned], got elastic", "aws_efs_file_system"),
    ("Computed attributes cannot be set", "aws_eip"),  # `domain` replaced `vpc = true` in 5.x
    (
        "expected rule.0.object_ownership to be one of [BucketOwnerPreferred ObjectWriter], "
        "got BucketOwnerEnforced",
        "aws_s3_bucket_ownership_controls",
    ),
}


def test_terraform_fmt(tool: Callable[[str], str]) -> None:
    proc = run([tool("terraform"), "fmt", "-check", "-recursive", "-diff", "terraform"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_terraform_validate_offline(tool: Callable[[str], str]) -> None:
    tool("terraform")
    # The roots are independent: validate them side by side (each takes a few seconds).
    with ThreadPoolExecutor(len(ROOTS)) as pool:
        results = pool.map(lambda root: run(["bash", "ci/tf-validate.sh", "terraform", root]), ROOTS)
        procs = dict(zip(ROOTS, results, strict=True))
    for root, proc in procs.items():
        output = proc.stdout + proc.stderr
        if proc.returncode == 0:
            assert "Success" in output, root
            continue
        errors = re.findall(
            r'Error: (.+)\n(?:.*\n){0,3}?\s+on .+ line \d+, in (?:resource|data) "([\w]+)"', output
        )
        assert errors, f"{root}: validate failed before checking the configuration:\n{output}"
        assert output.count("Error: ") == len(errors), output
        unexpected = {e for e in errors if e not in NEWER_THAN_339}
        assert not unexpected, f"{root}: {unexpected}\n{output}"


def variables(text: str) -> list[tuple[str, str]]:
    return re.findall(r'variable "(\w+)" \{(.*?)\n\}', text, re.DOTALL)


def test_variables_typed_described_validated() -> None:
    for path in TF.rglob("variables.tf"):
        for name, body in variables(path.read_text()):
            assert re.search(r"^\s+type\s+=", body, re.MULTILINE), f"{path}: {name} has no type"
            assert re.search(r'^\s+description\s+=\s+"\S', body, re.MULTILINE), (
                f"{path}: {name} has no description"
            )
    module = (TF / "modules" / "k3s-node" / "variables.tf").read_text()
    unvalidated = [n for n, body in variables(module) if "validation" not in body and n != "tags"]
    assert not unvalidated, unvalidated


def test_every_module_has_its_four_files() -> None:
    for d in [TF / "bootstrap", TF / "modules" / "k3s-node", TF / "envs" / "prod"]:
        for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (d / f).is_file(), d / f
        versions = (d / "versions.tf").read_text()
        assert 'version = "~> 5.0"' in versions and "required_version" in versions


def test_node_is_hardened() -> None:
    main = (TF / "modules" / "k3s-node" / "main.tf").read_text()
    assert re.search(r'http_tokens\s+=\s+"required"', main), "IMDSv2"
    assert re.search(r"root_block_device \{[^}]*encrypted\s+=\s+true", main, re.DOTALL)
    assert "AmazonSSMManagedInstanceCore" in main
    for port in ("22", "6443"):
        for block in re.findall(
            r'resource "aws_vpc_security_group_ingress_rule" "\w+" \{(.*?)\n\}', main, re.DOTALL
        ):
            if re.search(rf"from_port\s+=\s+{port}\b", block):
                assert "0.0.0.0/0" not in block and "var.admin_cidrs" in main
    assert not re.search(r"from_port\s+=\s+22\b", main), "no SSH: shell access is through SSM"
    init = (TF / "modules" / "k3s-node" / "templates" / "cloud-init.yaml.tftpl").read_text()
    assert 'INSTALL_K3S_VERSION="${k3s_version}"' in init
    assert "argo-cd/${argocd_version}/manifests/install.yaml" in init and "root_app_url" in init
    defaults = (TF / "modules" / "k3s-node" / "variables.tf").read_text()
    assert re.search(r'default\s+=\s+"v1\.\d+\.\d+\+k3s\d+"', defaults)
    assert re.search(r'default\s+=\s+"v\d+\.\d+\.\d+"', defaults)


def test_http_ports_open_only_with_an_ingress() -> None:
    """80/443 are reachable only when ingress_enabled says an ingress serves them (the chart has none);
    a plan cannot run offline, so this reads the rule's for_each and the example's values."""
    main = (TF / "modules" / "k3s-node" / "main.tf").read_text()
    (http,) = re.findall(
        r'resource "aws_vpc_security_group_ingress_rule" "http" \{(.*?)\n\}', main, re.DOTALL
    )
    assert re.search(r"for_each\s+=\s+var\.ingress_enabled \? \{.*\} : \{\}", http, re.DOTALL), http
    assert (
        "default     = false"
        in dict(variables((TF / "modules" / "k3s-node" / "variables.tf").read_text()))["ingress_enabled"]
    )
    env = (TF / "envs" / "prod" / "main.tf").read_text()
    assert "ingress_enabled    = var.ingress_enabled" in env
    example = (TF / "envs" / "prod" / "terraform.tfvars.example").read_text()
    assert re.search(r"^ingress_enabled\s+=\s+false$", example, re.M)


def test_state_bucket_is_private_versioned_encrypted() -> None:
    main = (TF / "bootstrap" / "main.tf").read_text()
    assert re.search(r'status\s+=\s+"Enabled"', main)
    assert 'sse_algorithm     = "aws:kms"' in main
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert re.search(rf"{flag}\s+=\s+true", main), flag
    assert 'resource "aws_dynamodb_table" "locks"' in main and 'hash_key     = "LockID"' in main


# ---- the data volume: PersistentVolumes survive instance replacement ---------------------------

MODULE = TF / "modules" / "k3s-node"
TEMPLATE = MODULE / "templates" / "cloud-init.yaml.tftpl"
MOUNT_SCRIPT = "/usr/local/sbin/mount-k3s-data-volume"
VOLUME_ID = "vol-0123456789abcdef0"


def block(text: str, header: str) -> str:
    """The body of one top-level block of formatted Terraform, e.g. `resource "aws_ebs_volume" "data"`."""
    match = re.search(rf"^{re.escape(header)} \{{\n(.*?)^\}}", text, re.DOTALL | re.MULTILINE)
    assert match, f"{header} not found"
    return match.group(1)


def template_vars() -> dict[str, str]:
    """The variables main.tf passes to templatefile(), as written there."""
    call = re.search(r"templatefile\([^,]+cloud-init\.yaml\.tftpl\", \{(.*?)\}\)", module_main(), re.DOTALL)
    assert call, "user_data is not rendered from the cloud-init template"
    return dict(re.findall(r"^\s+(\w+)\s+=\s+(.+?)\s*$", call.group(1), re.MULTILINE))


def render(values: dict[str, str]) -> str:
    """Terraform's templatefile() for what the template uses: ${name}, with $${ and %%{ as escapes.

    An unknown variable raises KeyError, as templatefile() fails; directives (%{...}) are refused.
    """
    text = TEMPLATE.read_text()
    assert "%{" not in text.replace("%%{", ""), "template directives are not rendered by this test"

    def substitute(m: re.Match[str]) -> str:
        return "${" if m.group(1) else values[m.group(2)]

    return re.sub(r"(\$\$\{)|\$\{(\w+)\}", substitute, text).replace("%%{", "%{")


def module_main() -> str:
    return (MODULE / "main.tf").read_text()


def local_storage_dir() -> str:
    match = re.search(r'local_storage_dir\s+=\s+"([^"]+)"', module_main())
    assert match
    return match.group(1)


def rendered_cloud_init(storage_dir: str | None = None) -> dict[str, Any]:
    values = {name: f"<{name}>" for name in template_vars()}
    values |= {"data_volume_id": VOLUME_ID, "local_storage_dir": storage_dir or local_storage_dir()}
    text = render(values)
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def write_files(cfg: dict[str, Any]) -> dict[str, str]:
    return {f["path"]: f["content"] for f in cfg["write_files"]}


def test_data_volume_is_encrypted_kept_and_attached() -> None:
    main = module_main()
    volume = block(main, 'resource "aws_ebs_volume" "data"')
    assert re.search(r"^\s+encrypted\s+=\s+true$", volume, re.MULTILINE)
    assert re.search(r"lifecycle \{\s+prevent_destroy\s+=\s+true\s+\}", volume), "never destroyed"
    # The zone comes from the subnet: from the instance it would be unknown while the instance is
    # replaced, and an unknown zone plans a replacement of the volume.
    assert re.search(r"availability_zone\s+=\s+data\.aws_subnet\.node\.availability_zone", volume)
    assert "aws_instance" not in volume
    assert re.search(r"size\s+=\s+var\.data_volume_size_gb", volume) and "Name" in volume
    attachment = block(main, 'resource "aws_volume_attachment" "data"')
    assert re.search(r"volume_id\s+=\s+aws_ebs_volume\.data\.id", attachment)
    assert re.search(r"instance_id\s+=\s+aws_instance\.node\.id", attachment)
    assert re.search(r"stop_instance_before_detaching\s+=\s+true", attachment)
    assert not re.search(r"(force_detach|skip_destroy)\s+=\s+true", attachment)
    node = block(main, 'resource "aws_instance" "node"')
    # An inline ebs_block_device would be the instance's (deleted with it); volume_tags on the
    # instance would fight the data volume's own tags.
    assert not re.search(r"^\s+(ebs_block_device\s+\{|volume_tags\s+=)", node, re.MULTILINE)
    assert template_vars()["data_volume_id"] == "aws_ebs_volume.data.id"
    for outputs, value in (
        (MODULE / "outputs.tf", "aws_ebs_volume.data.id"),
        (TF / "envs" / "prod" / "outputs.tf", "module.k3s_node.data_volume_id"),
    ):
        body = block(outputs.read_text(), 'output "data_volume_id"')
        assert re.search(rf"value\s+=\s+{re.escape(value)}$", body, re.MULTILINE), outputs
    size = block((MODULE / "variables.tf").read_text(), 'variable "data_volume_size_gb"')
    assert re.search(r"type\s+=\s+number", size) and "var.data_volume_size_gb >=" in size


def test_template_variables_match_the_templatefile_call() -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", TEMPLATE.read_text()))
    assert used == set(template_vars()), "templatefile() and the template disagree on variables"


def test_cloud_init_mounts_the_data_volume_before_k3s() -> None:
    storage = local_storage_dir()
    # local-path's folder: every PersistentVolume of the cluster lands on the data volume.
    assert storage == "/var/lib/rancher/k3s/storage"
    cfg = rendered_cloud_init()
    files = write_files(cfg)
    k3s_config = yaml.safe_load(files["/etc/rancher/k3s/config.yaml"])
    assert k3s_config["default-local-storage-path"] == storage
    # Every start of k3s, not only the first, waits for the mount (and fails without it).
    assert f"RequiresMountsFor={storage}" in files["/etc/systemd/system/k3s.service.d/10-data-volume.conf"]
    runcmd = [c if isinstance(c, str) else " ".join(c) for c in cfg["runcmd"]]
    assert runcmd[0] == "set -e", "runcmd must stop at the first failure (no k3s without its volume)"
    mount_at = runcmd.index(MOUNT_SCRIPT)
    k3s_at = next(i for i, c in enumerate(runcmd) if "get.k3s.io" in c)
    assert mount_at < k3s_at, "the data volume is mounted before k3s is installed"
    assert not any("k3s" in c or "kubectl" in c for c in runcmd[:mount_at])
    # Claims of the stable class keep their folder across nodes: namespace/claim, never the PV's id.
    storage_class = yaml.safe_load(files["/var/lib/rancher/k3s/server/manifests/cali-housing-storage.yaml"])
    assert storage_class["kind"] == "StorageClass" and storage_class["reclaimPolicy"] == "Retain"
    assert storage_class["provisioner"] == "rancher.io/local-path"
    pattern = storage_class["parameters"]["pathPattern"]
    assert pattern.startswith("{{ .PVC.Namespace }}/{{ .PVC.Name }}/") and "PVName" not in pattern


# The mount script, run for real against stand-in devices: the commands that touch disks (blkid,
# mkfs.ext4, mount, mountpoint, systemctl, resize2fs) are stubs that record their calls.
STUBS = {
    "blkid": """
if [ -e "$STATE/formatted" ]; then printf 'UUID=new-uuid\\nTYPE=ext4\\n'; exit 0; fi
printf '%b' "$FAKE_BLKID_OUT"; exit "$FAKE_BLKID_RC"
""",
    "mkfs.ext4": 'touch "$STATE/formatted"',
    "mount": 'touch "$STATE/mounted"',
    "mountpoint": '[ -e "$STATE/mounted" ]',
    "systemctl": "true",
    "resize2fs": "true",
}


def run_mount_script(
    tmp_path: Path, blkid_rc: int, blkid_out: str = "", attached: bool = True, fstab: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[str], str]:
    """Run the rendered mount script; return the run, the recorded calls and the resulting fstab."""
    storage = tmp_path / "storage"
    script = tmp_path / "mount-k3s-data-volume"
    script.write_text(write_files(rendered_cloud_init(str(storage)))[MOUNT_SCRIPT])
    stubs, state, devices, by_id = (tmp_path / d for d in ("bin", "state", "dev", "by-id"))
    for d in (stubs, state, devices, by_id):
        d.mkdir()
    for name, body in STUBS.items():
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >>"$STATE/calls"\n{body.strip()}\n')
        stub.chmod(0o755)
    # Another EBS volume (the root one) is attached too: the script must pick ours by its id.
    (devices / "nvme0n1").touch()
    (by_id / "nvme-Amazon_Elastic_Block_Store_vol0fedcba9876543210").symlink_to(devices / "nvme0n1")
    if attached:
        (devices / "nvme1n1").touch()
        serial = VOLUME_ID.replace("-", "")
        (by_id / f"nvme-Amazon_Elastic_Block_Store_{serial}").symlink_to(devices / "nvme1n1")
    (tmp_path / "fstab").write_text(fstab)
    env = {
        "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
        "STATE": str(state),
        "FAKE_BLKID_RC": str(blkid_rc),
        "FAKE_BLKID_OUT": blkid_out,
        "DATA_VOLUME_WAIT_SECONDS": "0",
        "DATA_VOLUME_BY_ID_DIR": str(by_id),
        "DATA_VOLUME_XEN_DEVICE": str(devices / "xvdf"),
        "DATA_VOLUME_FSTAB": str(tmp_path / "fstab"),
    }
    proc = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    calls_file = state / "calls"
    calls = calls_file.read_text().splitlines() if calls_file.exists() else []
    return proc, calls, (tmp_path / "fstab").read_text()


def test_mount_script_formats_a_blank_volume_then_mounts_it_by_uuid(tmp_path: Path) -> None:
    proc, calls, fstab = run_mount_script(tmp_path, blkid_rc=2)
    assert proc.returncode == 0, proc.stderr
    device = str(tmp_path / "dev" / "nvme1n1")
    assert [c for c in calls if c.startswith("mkfs")] == [f"mkfs.ext4 -q -L k3s-data {device}"]
    assert fstab.split() == [
        "UUID=new-uuid",
        str(tmp_path / "storage"),
        "ext4",
        "defaults,nofail,x-systemd.device-timeout=5min",
        "0",
        "2",
    ]
    assert calls.index(f"mount {tmp_path / 'storage'}") > calls.index(f"mkfs.ext4 -q -L k3s-data {device}")


def test_mount_script_never_reformats_a_volume_with_a_filesystem(tmp_path: Path) -> None:
    existing = "DEVNAME=x\\nUUID=old-uuid\\nTYPE=ext4\\n"
    proc, calls, fstab = run_mount_script(tmp_path, blkid_rc=0, blkid_out=existing)
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if c.startswith("mkfs")], calls
    assert fstab.startswith(f"UUID=old-uuid {tmp_path / 'storage'} ext4 ")
    assert f"mount {tmp_path / 'storage'}" in calls
    # A second run (same instance) neither formats nor duplicates the fstab entry.
    again = tmp_path / "again"
    again.mkdir()
    entry = f"UUID=old-uuid {again / 'storage'} ext4 defaults 0 2\n"
    proc, calls, fstab = run_mount_script(again, 0, existing, fstab=entry)
    assert proc.returncode == 0, proc.stderr
    assert fstab == entry and not [c for c in calls if c.startswith("mkfs")]


@pytest.mark.parametrize(
    ("blkid_rc", "blkid_out", "attached"),
    [
        (0, "DEVNAME=x\\nUUID=u\\nTYPE=xfs\\n", True),  # another filesystem: left untouched
        (0, "DEVNAME=x\\nPTUUID=p\\nPTTYPE=gpt\\n", True),  # a partition table: left untouched
        (4, "", True),  # blkid cannot tell: never guess "blank"
        (2, "", False),  # the volume never shows up
    ],
    ids=["xfs", "partitioned", "probe-error", "not-attached"],
)
def test_mount_script_refuses_and_stops_k3s_install(
    tmp_path: Path, blkid_rc: int, blkid_out: str, attached: bool
) -> None:
    proc, calls, fstab = run_mount_script(tmp_path, blkid_rc, blkid_out, attached=attached)
    assert proc.returncode != 0
    assert "k3s is NOT installed" in proc.stderr
    assert not [c for c in calls if c.split()[0] in ("mkfs.ext4", "mount")], calls
    assert fstab == ""


def test_mount_script_passes_shellcheck(tool: Callable[[str], str], tmp_path: Path) -> None:
    script = tmp_path / "mount-k3s-data-volume"
    script.write_text(write_files(rendered_cloud_init())[MOUNT_SCRIPT])
    proc = run([tool("shellcheck"), str(script)])
    assert proc.returncode == 0, proc.stdout + proc.stderr

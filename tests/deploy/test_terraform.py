"""Terraform: formatted, valid offline (against the bundled aws 3.39 schema), and safe by construction."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .helpers import REPO, run

TF = REPO / "terraform"
ROOTS = ["bootstrap", "envs/prod"]
# Diagnostics that only mean "newer than the aws 3.39.0 schema available offline" (shared/TOOLS.md);
# our code targets aws ~> 5.0. Anything else fails.
NEWER_THAN_339 = {
    ("Invalid resource type", "aws_s3_bucket_versioning"),
    ("Invalid resource type", "aws_s3_bucket_server_side_encryption_configuration"),
    ("Invalid resource type", "aws_s3_bucket_lifecycle_configuration"),
    ("Invalid resource type", "aws_vpc_security_group_ingress_rule"),
    ("Invalid resource type", "aws_vpc_security_group_egress_rule"),
    ("Invalid data source", "aws_subnets"),
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


def test_state_bucket_is_private_versioned_encrypted() -> None:
    main = (TF / "bootstrap" / "main.tf").read_text()
    assert re.search(r'status\s+=\s+"Enabled"', main)
    assert 'sse_algorithm     = "aws:kms"' in main
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert re.search(rf"{flag}\s+=\s+true", main), flag
    assert 'resource "aws_dynamodb_table" "locks"' in main and 'hash_key     = "LockID"' in main

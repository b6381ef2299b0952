#!/usr/bin/env bash
# Usage: ci/k8s-validate.sh K8S_VERSION FILE|- ...  (strict; kinds without schema fail unless allow-listed CRDs)
kv=$1; shift
crds='kind (Application|AppProject|ApplicationSet|ServiceMonitor|PodMonitor|PrometheusRule) with api version (argoproj\.io|monitoring\.coreos\.com)/'
out=$(kubernetes-validate --strict --quiet -k "$kv" "$@"); rc=$?
printf '%s\n' "$out"
if printf '%s\n' "$out" | grep '^WARN' | grep -vqE "$crds"; then echo "ERROR: resource without schema (removed API version or unknown CRD)"; rc=1; fi
exit $rc

#!/usr/bin/env bash
# Builds a Kubernetes control plane from source into .tools/bin: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl and kwok (nodes without a kubelet). Nothing
# prebuilt is downloaded: the sources come from the Go module proxy, pinned by ci/cluster/**/go.sum.
# Needs Go >= 1.26 on PATH. The first build is ~17 CPU-minutes (16 min on 2 shared cores, see docs/operations.md); a stamp keyed on
# the go.mod/go.sum files, this script and the Go version makes a second run take ~1 s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.tools/bin
stamp=$root/.tools/cluster.built
mkdir -p "$bin"
go=${GO:-go}
if ! command -v "$go" >/dev/null; then
  echo "build-cluster: Go 1.26+ is needed to build the local Kubernetes control plane (https://go.dev/dl/);" \
    "put it on PATH or set GO=/path/to/go; until then the tests in tests/cluster skip" >&2
  # CI must not pass by skipping: there a missing toolchain fails `make tools`.
  [[ ${CI:-} == true ]] && exit 1
  exit 0
fi
src=$root/ci/cluster
key=$({ "$go" env GOVERSION; cat "$0" "$src/go.mod" "$src/go.sum" "$src/etcd/go.mod" "$src/etcd/go.sum" \
  "$src/kwok/go.mod" "$src/kwok/go.sum"; } | sha256sum | cut -d' ' -f1)
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
have_all=true
for b in "${binaries[@]}"; do [[ -x $bin/$b ]] || have_all=false; done
if $have_all && [[ -f $stamp && $(cat "$stamp") == "$key" ]]; then
  exit 0
fi

version() { awk -v m="$1" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"; }
kube=$(version k8s.io/kubernetes "$src/go.mod")
[[ $kube =~ ^v([0-9]+)\.([0-9]+)\. ]] || { echo "build-cluster: no k8s.io/kubernetes version in $src/go.mod" >&2; exit 1; }
etcd=$(version go.etcd.io/etcd/server/v3 "$src/etcd/go.mod")
kwok=$(version sigs.k8s.io/kwok "$src/kwok/go.mod")
echo "build-cluster: Kubernetes $kube, etcd $etcd, kwok $kwok from source (the first build: ~16 min on 2 shared cores)"

export CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Without the version stamp /version answers v0.0.0 and a chart's kubeVersion check fails.
cv=k8s.io/component-base/version
kube_ldflags="-s -w -X $cv.gitVersion=$kube -X $cv.gitMajor=${BASH_REMATCH[1]} -X $cv.gitMinor=${BASH_REMATCH[2]}
  -X $cv.gitTreeState=clean -X $cv.buildDate=1970-01-01T00:00:00Z"
(cd "$src" && "$go" build -trimpath -ldflags "$kube_ldflags" -o "$bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
(cd "$src/etcd" && "$go" build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
(cd "$src/kwok" && "$go" build -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${kube#v}" \
  -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
# kwok's Stage files (node heartbeat, pods Ready, Job pods Succeeded, deletion) ship in its module.
stages=$root/.tools/kwok-stages
rm -rf "$stages" && mkdir -p "$stages"
kwok_dir=$(cd "$src/kwok" && "$go" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
cp -r "$kwok_dir/kustomize/stage/." "$stages/" && chmod -R u+w "$stages"
printf '%s' "$key" > "$stamp"

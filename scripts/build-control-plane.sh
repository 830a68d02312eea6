#!/usr/bin/env bash
# Builds the real Kubernetes control plane that tests/cluster runs, from the Go module proxy only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes v1.35.4, tools/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3 v3.6.16, tools/etcd)
#   kwok                                                              (sigs.k8s.io/kwok v0.8.0, tools/kwok)
# The binaries are cached outside the repository, under
#   ${INFADAPTER_CACHE_DIR:-~/.cache/infadapter}/control-plane/<key>/bin
# where <key> hashes the wrapper go.mod/go.sum files, this script and the Go version, so a change to
# any input builds anew and an unchanged tree costs nothing. Prints the bin directory on stdout.
# Nothing is committed: the binaries are ~400 MB.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/tools"

if ! command -v go >/dev/null 2>&1; then
  echo "build-control-plane: Go is not installed (need Go >= 1.26 and the Go module proxy)" >&2
  exit 3
fi

K8S_VERSION="v1.35.4"
cache_root="${INFADAPTER_CACHE_DIR:-$HOME/.cache/infadapter}/control-plane"
key="$( { cat "$tools"/kubernetes/go.mod "$tools"/kubernetes/go.sum \
               "$tools"/etcd/go.mod "$tools"/etcd/go.sum \
               "$tools"/kwok/go.mod "$tools"/kwok/go.sum "$0"; go version; } | sha256sum | cut -c1-16)"
out="$cache_root/$key/bin"
want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

complete() {
  for b in "${want[@]}"; do [ -x "$out/$b" ] || return 1; done
  [ -f "$out/kwok-stages/pod-ready.yaml" ]
}
if complete; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache_root"
# One build at a time per cache (a CI run and a developer may share the machine).
exec 9>"$cache_root/.lock"
flock 9
if complete; then
  echo "$out"
  exit 0
fi

tmp="$cache_root/$key/bin.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false" GOTOOLCHAIN=local
start=$(date +%s)

# Unstamped binaries say v0.0.0-master: Helm then refuses charts with a kubeVersion constraint.
# A fixed buildDate keeps the link step cacheable.
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=35"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
  stamp+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000"
done

echo "build-control-plane: building Kubernetes $K8S_VERSION (cold, empty Go caches: about 9 min on 2 cores)" >&2
(cd "$tools/kubernetes" && go build -ldflags "-s -w$stamp" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl) >&2
echo "build-control-plane: building etcd" >&2
(cd "$tools/etcd" && go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) >&2
echo "build-control-plane: building kwok" >&2
(cd "$tools/kwok" && go build -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok) >&2

# kwok's stock Stages (node initialise/heartbeat, pod ready/delete) ship in its module.
kwok_dir="$(cd "$tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
mkdir -p "$tmp/kwok-stages"
cp -f "$kwok_dir"/kustomize/stage/node/fast/*.yaml "$tmp/kwok-stages/" 2>/dev/null || true
cp -f "$kwok_dir"/kustomize/stage/node/heartbeat-with-lease/*.yaml "$tmp/kwok-stages/" 2>/dev/null || true
cp -f "$kwok_dir"/kustomize/stage/pod/fast/*.yaml "$tmp/kwok-stages/" 2>/dev/null || true

rm -rf "$out"
mv "$tmp" "$out"
echo "build-control-plane: done in $(( $(date +%s) - start )) s -> $out" >&2
echo "$out"

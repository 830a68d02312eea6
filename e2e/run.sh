#!/usr/bin/env bash
# End-to-end on a real cluster (kind): Prometheus + the chart + the demo variants + load, then assertions.
#   e2e/run.sh            (needs docker, kind, kubectl, helm; 15-40 minutes, most of it pulling the multi-GB
#                          Triton image into the nodes; deletes the cluster at the end)
#   KEEP_CLUSTER=1 e2e/run.sh
# Versions are pinned: kind's node image (by digest), the kube-prometheus-stack chart, every container image
# (the data plane's are the operator's defaults, infadapter.runtime.kube.objects.Images).
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=infadapter-e2e
KIND_NODE_IMAGE="kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"  # kind v0.31.0
PROMETHEUS_CHART_VERSION=88.5.3   # prometheus-community/kube-prometheus-stack
MODELS_SERVER_IMAGE=$(sed -n 's/^ *image: *//p' e2e/models-server.yaml)
PULL_TIMEOUT_S=${PULL_TIMEOUT_S:-3600}   # the Triton image is ~10 GB compressed
READY_TIMEOUT_S=${READY_TIMEOUT_S:-1200}
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is not installed" >&2; exit 3; }
done
docker info >/dev/null 2>&1 || { echo "e2e: no Docker daemon" >&2; exit 3; }
cleanup() { [ "${KEEP_CLUSTER:-0}" = 1 ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== models"
MODELS=$(mktemp -d)
.venv/bin/infadapter models build --out "$MODELS" --variants resnet18,resnet50 >/dev/null
# the files are written private (0600, in a 0700 directory); the in-cluster model server runs as uid 101
chmod -R a+rX "$MODELS"
echo "== cluster"
kind create cluster --config e2e/kind.yaml --image "$KIND_NODE_IMAGE" --wait 300s
NODES=$(kind get nodes --name "$CLUSTER")
for node in $NODES; do
  docker cp "$MODELS/." "$node:/models"
  docker exec "$node" chmod -R a+rX /models
done
echo "== images (pulled into every node first, so the waits below measure the service, not the registry)"
read -r -a IMAGES <<<"$(.venv/bin/python -c 'from infadapter.runtime.kube.objects import Images; i = Images(); print(i.triton, i.envoy, i.agent)') $MODELS_SERVER_IMAGE"
pulls=()
for node in $NODES; do
  for image in "${IMAGES[@]}"; do
    timeout "$PULL_TIMEOUT_S" docker exec "$node" crictl pull "$image" >/dev/null & pulls+=($!)
  done
done
for pid in "${pulls[@]}"; do wait "$pid" || { echo "e2e: an image pull failed or took over ${PULL_TIMEOUT_S}s" >&2; exit 1; }; done
echo "== operator image"
docker build -q -f e2e/Dockerfile.operator -t infadapter:e2e .
kind load docker-image infadapter:e2e --name "$CLUSTER"
echo "== prometheus (kube-prometheus-stack $PROMETHEUS_CHART_VERSION: prometheus-operator + Prometheus, no Grafana)"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
helm upgrade --install prom prometheus-community/kube-prometheus-stack --version "$PROMETHEUS_CHART_VERSION" \
  -n monitoring --create-namespace --wait --timeout 15m \
  --set grafana.enabled=false --set alertmanager.enabled=false \
  --set prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.scrapeInterval=5s
echo "== infadapter chart (image.repository is required: no public image)"
helm upgrade --install infadapter manifests/chart -n infadapter-system --create-namespace --wait --timeout 5m \
  --set image.repository=infadapter --set image.tag=e2e --set image.pullPolicy=Never \
  --set prometheus.url=http://prom-kube-prometheus-stack-prometheus.monitoring.svc:9090 \
  --set podMonitor.enabled=true --set serviceMonitor.enabled=true --set prometheusRule.enabled=true
echo "== invalid resource is refused at admission"
if kubectl apply -f - <<<'{"apiVersion":"infadapter.io/v1alpha1","kind":"InferenceService","metadata":{"name":"bad","namespace":"default"},"spec":{"variants":[{"name":"a","accuracy":2}]}}' 2>/tmp/e2e-refused; then
  echo "e2e: an invalid resource was accepted" >&2; exit 1
fi
grep -q "spec.variants\[0\].accuracy" /tmp/e2e-refused
echo "== demo service"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f e2e/models-server.yaml
kubectl -n demo wait pod/models --for=condition=Ready --timeout=300s
kubectl -n demo create configmap demo-profile --from-file=profile.yaml=examples/demo-profile.yaml --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f e2e/inferenceservice.yaml
if ! kubectl -n demo wait inferenceservice/demo --for=condition=Ready --timeout="${READY_TIMEOUT_S}s"; then
  kubectl -n demo get inferenceservice,deployments,pods -o wide >&2 || true
  kubectl -n demo describe pods >&2 || true
  exit 1
fi
kubectl -n demo rollout status deployment/demo-router --timeout=300s  # both router replicas hold the weights
echo "== load through the router"
kubectl -n demo port-forward svc/demo-router 18080:8080 >/dev/null 2>&1 & PF=$!
sleep 3
.venv/bin/infadapter load --url 127.0.0.1:18080 --model resnet --rate 20 --duration 90 --json > /tmp/e2e-load.json
kill $PF
echo "== assertions"
kubectl -n demo get inferenceservice demo -o wide
.venv/bin/python - <<'PY'
import json, subprocess
status = json.loads(subprocess.check_output(["kubectl", "-n", "demo", "get", "inferenceservice", "demo", "-o", "json"]))["status"]
conditions = {c["type"]: c["status"] for c in status["conditions"]}
assert conditions["Ready"] == "True" and conditions["MetricsAvailable"] == "True", conditions
assert status["observedLoadRps"] > 5, status
load = json.load(open("/tmp/e2e-load.json"))
assert load["ok"] > 0 and load["errors"] <= 0.01 * load["sent"], load  # through two routers, none lost
print("e2e: OK", status["summary"], "observed", status["observedLoadRps"], "rps")
PY

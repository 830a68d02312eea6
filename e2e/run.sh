#!/usr/bin/env bash
# End-to-end on a real cluster (kind): Prometheus + the chart + the demo variants + load, then assertions.
#   e2e/run.sh            (needs docker, kind, kubectl, helm; ~10 minutes; deletes the cluster at the end)
#   KEEP_CLUSTER=1 e2e/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=infadapter-e2e
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is not installed" >&2; exit 3; }
done
docker info >/dev/null 2>&1 || { echo "e2e: no Docker daemon" >&2; exit 3; }
cleanup() { [ "${KEEP_CLUSTER:-0}" = 1 ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== models"
MODELS=$(mktemp -d)
.venv/bin/infadapter models build --out "$MODELS" --variants resnet18,resnet50 >/dev/null
echo "== cluster"
kind create cluster --config e2e/kind.yaml --wait 120s
for node in $(kind get nodes --name "$CLUSTER"); do docker cp "$MODELS/." "$node:/models"; done
echo "== operator image"
docker build -q -f e2e/Dockerfile.operator -t infadapter:e2e .
kind load docker-image infadapter:e2e --name "$CLUSTER"
echo "== prometheus (kube-prometheus-stack: prometheus-operator + Prometheus, no Grafana)"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
helm upgrade --install prom prometheus-community/kube-prometheus-stack -n monitoring --create-namespace --wait \
  --set grafana.enabled=false --set alertmanager.enabled=false \
  --set prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.scrapeInterval=5s
echo "== infadapter chart"
helm upgrade --install infadapter manifests/chart -n infadapter-system --create-namespace --wait \
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
kubectl -n demo create configmap demo-profile --from-file=profile.yaml=examples/demo-profile.yaml --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f e2e/inferenceservice.yaml
kubectl -n demo wait inferenceservice/demo --for=condition=Ready --timeout=600s
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
assert load.get("ok", load.get("succeeded", 0)) > 0, load
print("e2e: OK", status["summary"], "observed", status["observedLoadRps"], "rps")
PY

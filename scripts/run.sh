#!/usr/bin/env bash
# The main job on the embedded default: installs what it needs, then runs InfAdapter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/infadapter run -f examples/demo.yaml "$@"

#!/usr/bin/env bash
# The main job on the embedded default: installs what it needs, then runs InfAdapter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/infadapter plan --profile ../shared/data/capacity_result_Feb_21.csv --load 60 --current resnet152=20 "$@"

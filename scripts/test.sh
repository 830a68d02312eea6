#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, then lint and formatting (ruff), types (mypy --strict),
# layering (import-linter), and every test (pytest; exit code 5 = no tests = failure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the real Kubernetes control plane of tests/cluster (cached outside the repository; cold: minutes)
if command -v go >/dev/null 2>&1; then
  echo "== control plane: $(bash scripts/build-control-plane.sh)"
else
  echo "== control plane: Go is missing, tests/cluster will be skipped"
fi
echo "== ruff";          .venv/bin/ruff check infadapter tests benchmarks scripts
echo "== ruff format";   .venv/bin/ruff format --check infadapter tests benchmarks scripts
echo "== mypy --strict"; .venv/bin/mypy
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest -p no:cacheprovider "$@"

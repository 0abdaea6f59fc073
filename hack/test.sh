#!/usr/bin/env bash
# Quick start, part 2: install test needs and run the whole suite (unit, integration, lab).
# Extra arguments go to pytest, e.g. `bash hack/test.sh -m unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install.sh --test
echo ">> ruff check"
.venv/bin/ruff check .
echo ">> pytest"
exec .venv/bin/pytest "$@"

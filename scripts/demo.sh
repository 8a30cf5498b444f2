#!/usr/bin/env bash
# The demo command: set up, start (or find) the local servers, seed synthetic data, run the
# main job (the five daily retention DAGs as of today, plus sample requests), print a summary.
# Extra arguments go to scripts/demo.py (e.g. --as-of 2026-11-28 --tenants 10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh demo
python -m devservers up
exec python scripts/demo.py "$@"

#!/usr/bin/env bash
# Stop only the servers the project's scripts started (by pid); leave everything else alone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
python -m devservers down

#!/usr/bin/env bash
# The test command: prepare the environment, start (or find) the local servers, run the
# whole pytest suite. Extra arguments go to pytest. Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh test
python -m devservers up
mkdir -p artifacts
exec python -m pytest "$@"

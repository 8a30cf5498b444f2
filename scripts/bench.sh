#!/usr/bin/env bash
# The benchmarks (not part of the test suite): each store's purge against its baseline, on
# private servers the scripts start and stop themselves. Results: docs/BENCHMARKS.md.
# Usage: scripts/bench.sh [mysql|redis|cos|elasticsearch|daily_dags ...]   (default: the four stores;
# daily_dags, the five daily DAGs over a large data set, takes about 30 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh bench
if [[ $(id -u) == 0 ]] && ! command -v pt-archiver >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends percona-toolkit >/dev/null
fi
python -m devservers up
for store in "${@:-mysql redis cos elasticsearch}"; do
  for s in $store; do
    echo "=== benchmarks/bench_$s.py"
    python "benchmarks/bench_$s.py"
  done
done

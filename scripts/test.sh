#!/usr/bin/env bash
# The test command: prepare the environment, start (or find) the local servers, run the
# whole pytest suite. Extra arguments go to pytest. Usage: scripts/test.sh [pytest args]
#
# With no arguments, tests/e2e/test_cluster.py (a CeleryExecutor Airflow on PostgreSQL, about
# four minutes, most of it waiting on the cluster) runs in a second pytest beside the rest:
# its world has its own databases, bucket, Redis db and Elasticsearch stand-in, so the two
# never meet. Its output follows the main run's; the command fails when either fails. With a
# real cluster in ELASTICSEARCH_URL (one cluster for everything) they run one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh test
python -m devservers up
mkdir -p artifacts
if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi
cluster_tests=tests/e2e/test_cluster.py
if [ -n "${ELASTICSEARCH_URL:-}" ]; then
  exec python -m pytest
fi
cluster_log=artifacts/pytest-cluster.log
python -m pytest "$cluster_tests" -p no:cacheprovider --basetemp=.run/pytest-cluster >"$cluster_log" 2>&1 &
cluster_pid=$!
# Interrupted: let the cluster's pytest tear its cluster down (SIGINT runs its finalizers).
trap 'kill -INT "$cluster_pid" 2>/dev/null || true' INT TERM
main_status=0
python -m pytest --ignore="$cluster_tests" || main_status=$?
cluster_status=0
wait "$cluster_pid" || cluster_status=$?
trap - INT TERM
echo
echo "===== $cluster_tests (run beside the rest; also in $cluster_log) ====="
cat "$cluster_log"
echo "test.sh: the suite without $cluster_tests exited $main_status; $cluster_tests exited $cluster_status"
[ "$main_status" -eq 0 ] && [ "$cluster_status" -eq 0 ]

#!/usr/bin/env bash
# Stop only what the project's scripts started (by pid): the local Airflow of ./scripts/airflow.sh,
# the cluster of ./scripts/cluster.sh,
# then the dev servers. Servers that were already running are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh demo
python -m devservers.airflow_ui down
python -m devservers.cluster down
python -m devservers down

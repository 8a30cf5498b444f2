#!/usr/bin/env bash
# The package inside Airflow: a local Airflow (api-server, scheduler, dag-processor, triggerer)
# over the demo's servers, connections and data, in the demo's AIRFLOW_HOME. Prints the UI's
# address, the login and where the retention dashboard is. Idempotent: a running instance is
# reported. RETENTION_UI_PORT chooses the port (default 8080 if free). Stop: ./scripts/stop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh demo
python -m devservers up
exec python -m devservers.airflow_ui up "$@"

#!/usr/bin/env bash
# A local distributed Airflow as production runs it: PostgreSQL metadata DB, Celery broker
# (Redis db 15; --broker amqp for RabbitMQ), api-server, scheduler, dag-processor, triggerer
# and two Celery workers, over the demo's servers and data. Prints the UI's address and login.
# Usage: scripts/cluster.sh up|down|status [--broker redis|amqp] [--port N]
# `down` stops only what `up` started (by pid). Details: devservers/cluster.py, docs/DEPLOYMENT.md.
set -euo pipefail
cd "$(dirname "$0")/.."
(($#)) || set -- up
command=$1
scripts/setup.sh
source scripts/env.sh demo
if [[ $command == up ]]; then
  python -m devservers up
fi
exec python -m devservers.cluster "$@"

"""``python -m devservers up|down|status|env [--namespace demo|test]``."""

from __future__ import annotations

import argparse
import shlex
import sys

from devservers import connections, mysql_users
from devservers.procs import load_endpoints, say
from devservers.servers import ensure_all, stop_all

SERVERS = ("mariadb", "redis", "s3", "elasticsearch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devservers")
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--namespace", choices=["demo", "test"], default="demo")
    args = parser.parse_args(argv)
    ns = connections.DEMO if args.namespace == "demo" else connections.TEST
    if args.command == "up":
        for name, ep in ensure_all().items():
            say(f"{name:<14} 127.0.0.1:{ep.port:<6} {'started here' if ep.owned else 'already running'}"
                f"{' (' + str(ep.extra.get('kind')) + ')' if ep.extra.get('kind') else ''}")
        return 0
    if args.command == "down":
        stopped = stop_all()
        say("stopped: " + (", ".join(stopped) if stopped else "nothing (no server was started here)"))
        return 0
    endpoints = load_endpoints()
    if args.command == "status":
        for name, ep in endpoints.items():
            print(f"{name:<14} 127.0.0.1:{ep.port:<6} owned={ep.owned}")
        from devservers import airflow_ui  # the local Airflow of scripts/airflow.sh, if it runs

        home = airflow_ui.default_home()
        instance, running = airflow_ui.load_instance(home), airflow_ui.running_components(home)
        if instance and running:
            print(f"{'airflow-ui':<14} 127.0.0.1:{instance.port:<6} owned=True ({', '.join(running)})")
        return 0
    if "mariadb" in endpoints:  # the MySQL account the printed connections log in as
        mysql_users.ensure_store_user(endpoints["mariadb"], ns.mysql_database, ns.ledger_database)
    for key, value in connections.airflow_connections(endpoints, ns).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

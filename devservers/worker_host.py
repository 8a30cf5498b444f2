"""``[core] hostname_callable`` for the local cluster's Celery workers: each worker names
itself (``RETENTION_WORKER_HOSTNAME``), as workers on separate hosts would by their FQDN, so
that a task instance's ``hostname`` says which worker ran it."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("RETENTION_WORKER_HOSTNAME") or socket.getfqdn()

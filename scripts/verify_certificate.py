#!/usr/bin/env python
"""Check a deletion certificate: its HMAC signature and its internal consistency.

Usage::

    scripts/verify_certificate.py certificates/DEL-20261128-1a2b3c4d.json
    scripts/verify_certificate.py --request-id DEL-20261128-1a2b3c4d        # the ledger's copy
    CERT_KEY=... scripts/verify_certificate.py FILE --key-env CERT_KEY      # key from a variable

The key is the ``certificate_key`` in the extra of the ``retention_keys`` Airflow connection
(``AIRFLOW_CONN_RETENTION_KEYS``), unless ``--key-env`` names an environment variable that
holds it. Exit status 0: valid; 1: invalid (the reasons are printed).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.retention.cli.verify_certificate import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["verify", *sys.argv[1:]]))

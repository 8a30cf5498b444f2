"""Check the signature and consistency of a deletion certificate, or show one from the ledger.

    python -m include.retention.cli.verify_certificate verify certificates/DEL-20261128-1a2b3c4d.json
    python -m include.retention.cli.verify_certificate verify --request-id DEL-20261128-1a2b3c4d  # the ledger's copy
    python -m include.retention.cli.verify_certificate show DEL-20261128-1a2b3c4d                 # Markdown

The key is the ``certificate_key`` of the ``retention_keys`` Airflow connection, unless
``--key-env`` names an environment variable that holds it. ``scripts/verify_certificate.py``
is ``verify`` of this command. Exit status 0: valid; 1: invalid (the reasons are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from include.retention.certificates.document import verify_document
from include.retention.certificates.render import render_markdown
from include.retention.crypto import RetentionCrypto
from include.retention.ledger.certificates import load_certificate


def _crypto(args: argparse.Namespace) -> RetentionCrypto:
    if args.key_env:
        secret = os.environ.get(args.key_env)
        if not secret:
            raise SystemExit(f"environment variable {args.key_env} is empty")
        return RetentionCrypto(b"", b"", secret.encode())
    return RetentionCrypto.from_connection(args.conn_id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.retention.cli.verify_certificate",
                                     description="Check the signature and consistency of a deletion certificate.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="verify a certificate file (or one from the ledger)")
    check.add_argument("file", nargs="?", help="the certificate's JSON file")
    check.add_argument("--request-id", help="verify the certificate the ledger holds for this request")
    check.add_argument("--conn-id", default="retention_keys", help="Airflow connection with certificate_key")
    check.add_argument("--key-env", help="read the signing key from this environment variable instead")
    show = sub.add_parser("show", help="print a certificate from the ledger as Markdown")
    show.add_argument("request_id")
    args = parser.parse_args(argv)
    if args.command == "show":
        stored = load_certificate(args.request_id)
        if stored is None:
            print(f"no certificate for {args.request_id}", file=sys.stderr)
            return 1
        print(render_markdown(stored.document))
        return 0
    if bool(args.file) == bool(args.request_id):
        parser.error("give a file or --request-id")
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            document = json.load(handle)
    else:
        stored = load_certificate(args.request_id)
        if stored is None:
            print(f"no certificate for {args.request_id}", file=sys.stderr)
            return 1
        document = stored.document
    result = verify_document(document, _crypto(args))
    print(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

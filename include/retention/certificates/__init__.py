"""Deletion certificates: what was deleted, where, how many, when, by which runs, and how the
backups stand, signed with the ``certificate_key`` of the ``retention_keys`` connection.

- ``document``: build the body from the ledger, sign it, verify a signed document (no writes);
- ``render``: Markdown and HTML of a signed document (pure: all the dashboard may import);
- ``issue``: issue a verified request's certificate (COS and the ledger) and complete the request.

The command line that checks a certificate is ``include/retention/cli/verify_certificate.py``
(``scripts/verify_certificate.py``).
"""

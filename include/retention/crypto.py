"""Secrets the package needs, read lazily from one Airflow connection (``retention_keys``).

The connection's extra holds:

- ``subject_hash_key``: HMAC key that turns a subject id into a pseudonym for logs,
  XComs, the audit ledger and certificates;
- ``subject_encryption_key``: Fernet key for the few subject ids the ledger must keep
  readable until a request's window closes (to sweep late-arriving data), and for holds;
- ``certificate_key``: HMAC key that signs deletion certificates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

DEFAULT_KEYS_CONN_ID = "retention_keys"


@dataclass(frozen=True)
class RetentionCrypto:
    subject_hash_key: bytes = field(repr=False)
    subject_encryption_key: bytes = field(repr=False)
    certificate_key: bytes = field(repr=False)

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_KEYS_CONN_ID) -> RetentionCrypto:
        from airflow.sdk import BaseHook

        extra = BaseHook.get_connection(conn_id).extra_dejson
        missing = [k for k in ("subject_hash_key", "subject_encryption_key", "certificate_key") if not extra.get(k)]
        if missing:
            raise ValueError(f"connection {conn_id!r} lacks {', '.join(missing)} in its extra")
        return cls(
            subject_hash_key=str(extra["subject_hash_key"]).encode(),
            subject_encryption_key=str(extra["subject_encryption_key"]).encode(),
            certificate_key=str(extra["certificate_key"]).encode(),
        )

    def subject_hash(self, tenant: str, subject_type: str, subject_id: str) -> str:
        """A stable keyed pseudonym for one subject of one tenant (hex HMAC-SHA256)."""
        message = f"{tenant}\x1f{subject_type}\x1f{subject_id}".encode()
        return hmac.new(self.subject_hash_key, message, hashlib.sha256).hexdigest()

    def _fernet(self):  # type: ignore[no-untyped-def]
        from cryptography.fernet import Fernet

        key = self.subject_encryption_key
        try:
            return Fernet(key)
        except ValueError:
            # Any secret string works: derive a proper 32-byte Fernet key from it.
            return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key).digest()))

    def encrypt_subject(self, subject_id: str) -> str:
        return self._fernet().encrypt(subject_id.encode()).decode()

    def decrypt_subject(self, token: str) -> str:
        return self._fernet().decrypt(token.encode()).decode()

    def sign(self, payload: bytes) -> str:
        return hmac.new(self.certificate_key, payload, hashlib.sha256).hexdigest()

    def verify_signature(self, payload: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(payload), signature)

"""The request rows of the hostile-input catalogue (docs/RELIABILITY.md) on the real servers:
each goes through ``requests.intake.submit``, what the ``register`` task of ``deletion_requests`` calls,
against a seeded tenant, and nothing in any store or in the ledger changes but a ``rejected`` row.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import Stores, World
from tests.hostile_catalogue import PHONE, REQUEST_ENTRY_POINTS, Case, cases_of, request_conf

pytestmark = pytest.mark.servers

UTC = timezone.utc
TABLES = ("agents", "administrators", "call_records", "call_metrics", "service_records", "quick_replies",
          "blacklist_numbers", "keywords", "role_permissions", "popup_settings")
#: Ledger tables no refused request may write to (``requests`` and ``request_events`` get its rejection).
UNTOUCHED_LEDGER = ("request_steps", "purge_audit", "tenant_overrides", "legal_holds", "certificates",
                    "request_step_keys", "request_alerts")


@pytest.fixture(scope="module")
def target_world(stores: Stores, today: Any) -> World:
    """The tenant every hostile request aims at (or names, for an unknown tenant)."""
    return World(stores, stores.new_tenant(), today).seed()


class Snapshot:
    """Everything of one tenant in the four stores, and the ledger tables a refusal must not
    touch, read over clients kept open (a snapshot is taken after every case)."""

    def __init__(self, world: World) -> None:
        s = world.stores
        self.world, self.mysql, self.redis, self.s3, self.es = world, s.mysql(), s.redis(), s.s3(), s.es()
        self.ledger = s.mysql(s.ledger_database)

    def take(self) -> dict[str, Any]:
        w, s = self.world, self.world.stores
        cur, digest = self.mysql.cursor(), {}
        for table in TABLES:
            cur.execute(f"SELECT * FROM `{table}` WHERE tenant_id = %s ORDER BY 1", (w.tenant,))
            rows = cur.fetchall()
            digest[table] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        keys = sorted(self.redis.scan_iter(match=f"cc:{w.tenant}:*", count=1000))
        objects = {}
        for top in ("recordings", "backups"):
            listing = self.s3.list_objects_v2(Bucket=s.bucket, Prefix=f"{top}/{w.tenant}/")
            objects.update({o["Key"]: o["ETag"] for o in listing.get("Contents", ())})
        self.es.indices.refresh(index=w.index)
        ledger = self.ledger.cursor()
        counts = {}
        for table in UNTOUCHED_LEDGER:
            ledger.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = ledger.fetchone()[0]
        return {"mysql": digest, "redis": {k: self.redis.dump(k) for k in keys}, "cos": objects,
                "elasticsearch": self.es.count(index=w.index)["count"], "ledger": counts}

    def close(self) -> None:
        self.mysql.close(), self.ledger.close(), self.es.close()


@pytest.fixture(scope="module")
def snapshots(target_world: World) -> Iterator[tuple[Snapshot, dict[str, Any]]]:
    """The snapshot taker and the state before any hostile request."""
    snapshot = Snapshot(target_world)
    before = snapshot.take()
    assert before["mysql"]["call_records"][0] == 4 and before["redis"] and before["cos"]
    assert before["elasticsearch"] == 5
    yield snapshot, before
    snapshot.close()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.case_id) for c in cases_of(*REQUEST_ENTRY_POINTS)])
def test_hostile_request_is_rejected_and_nothing_changes(
    target_world: World, snapshots: tuple[Snapshot, dict[str, Any]], case: Case
) -> None:
    from include.retention.requests.intake import submit
    from include.retention.crypto import RetentionCrypto
    from include.retention.policy import load_policy

    conf = request_conf(case, target_world.tenant)
    keys = RetentionCrypto.from_connection()

    submission = submit(load_policy(), conf, run_after=datetime.now(UTC), run_id=f"manual__{case.case_id}",
                        crypto=keys)

    assert submission.outcome == "rejected"
    request = submission.request
    assert request.state == "rejected" and case.error in (request.error or "")
    assert request.subject_hash is None and request.subject_enc is None
    assert PHONE not in (request.error or "") and PHONE[3:] not in (request.error or "")
    snapshot, before = snapshots
    assert snapshot.take() == before
    if isinstance(conf.get("reference"), str) and request.reference == conf["reference"]:
        assert submit(load_policy(), conf, run_after=datetime.now(UTC), run_id="manual__again",
                      crypto=keys).outcome == "rejected"  # a rejected reference stays rejected

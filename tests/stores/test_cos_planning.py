"""COS planning on real Swift: the LIST requests of a daily plan grow with pages of objects, not
with tenants x days, and the plan is exactly what expired.

The requests are counted on the store's own client (a botocore ``before-call`` hook), by the
target prefix they list. Tenants 12 and 123 share a prefix; most tenants have nothing expired.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from devservers.connections import DEV_KEYS
from include.retention.crypto import RetentionCrypto
from include.retention.daily.breaker import RunOptions
from include.retention.daily.plan import plan_category
from include.retention.facts import LedgerFacts
from include.retention.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from include.retention.stores.cos import CosStore
from tests.fixtures.cos import CosBucket

pytestmark = pytest.mark.servers

KEYS = RetentionCrypto(
    subject_hash_key=DEV_KEYS["subject_hash_key"].encode(),
    subject_encryption_key=DEV_KEYS["subject_encryption_key"].encode(),
    certificate_key=DEV_KEYS["certificate_key"].encode(),
)
AS_OF = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
TENANTS = ["12", "123"] + [f"55{n:03d}" for n in range(38)]
EXPIRED = {"12": [date(2026, 4, 2), date(2026, 4, 3)], "55007": [date(2026, 5, 1)]}  # recordings: 6 months
OLD_BACKUP = {"123": date(2026, 10, 1)}  # backups: 28 days
PAGE = 25  # keys per listing page, small so that pages, not tenants, are what costs


@pytest.fixture
def call_data_cos_only() -> Policy:
    """The packaged policy with call_data reduced to its COS targets (no deletion requests here,
    so the recordings need no MySQL for their keys)."""
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    call_data = raw["categories"]["call_data"]
    call_data["targets"] = [t for t in call_data["targets"] if t["store"] == "cos"]
    for t in call_data["targets"]:
        t.pop("subject_keys_from", None)
    call_data["requests"] = ["termination"]
    return parse_policy(raw)


def layout() -> dict[str, set[str]]:
    recent = [AS_OF.date() - timedelta(days=d) for d in (3, 9, 40, 70)]
    keys: dict[str, set[str]] = {"recordings": set(), "backups": set(), "expired recordings": set(),
                                 "expired backups": set()}
    for tenant in TENANTS:
        for day in recent:
            keys["recordings"].add(f"recordings/{tenant}/{day:%Y/%m/%d}/call-1.wav")
        for day in EXPIRED.get(tenant, []):
            keys["expired recordings"] |= {f"recordings/{tenant}/{day:%Y/%m/%d}/call-{i}.wav" for i in range(2)}
        for category in ("agent_info", "call_data"):
            keys["backups"].add(f"backups/{tenant}/{recent[0]:%Y-%m-%d}/{category}/calls.sql.gz")
        if tenant in OLD_BACKUP:
            keys["expired backups"].add(f"backups/{tenant}/{OLD_BACKUP[tenant]:%Y-%m-%d}/call_data/calls.sql.gz")
    return keys


def test_plan_lists_pages_of_objects_not_tenants_times_days(call_data_cos_only: Policy, cos_bucket: CosBucket) -> None:
    groups = layout()
    cos_bucket.put(set().union(*groups.values()))
    store = CosStore(timezone=call_data_cos_only.timezone, bucket=cos_bucket.name, page_size=PAGE)
    lists: Counter[str] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        lists[params["query_string"].get("prefix", "").split("/")[0]] += 1

    store.client.meta.events.register("before-call.s3.ListObjectsV2", count)

    plan = plan_category(call_data_cos_only, "call_data", AS_OF, RunOptions(allow_large_purge=True,
                                                                            override_reason="test"),
                         crypto=KEYS, facts=LedgerFacts(), stores={"cos": store})

    planned = {(s["target"], s["selection"]["tenant"]): s["planned"] for s in plan["specs"]}
    assert planned == {("call_data.recordings", "12"): 4, ("call_data.recordings", "55007"): 2,
                       ("call_data.call_data_backups", "123"): 1}
    recordings = len(groups["recordings"] | groups["expired recordings"])
    # dated_units: the pages of recordings/; the counts: one skip-scan of the expired units of two
    # tenants; the breaker's total: the pages again. A tenant with nothing expired costs no request.
    assert lists["recordings"] <= 2 * math.ceil(recordings / PAGE) + 3, lists
    backups = len(groups["backups"] | groups["expired backups"])
    assert lists["backups"] <= 2 * math.ceil(backups / PAGE) + 3, lists
    # The old planning walked the prefix tree: a Delimiter listing per tenant, year and month.
    assert sum(lists.values()) < len(TENANTS)

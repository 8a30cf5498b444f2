"""COS: several DeleteObjects batches in flight at once, on real Swift (s3api over HTTP).

The bound comes from the store's argument or the connection's ``retention_tuning`` extra; the
count stays what the server acknowledged, also when a batch fails while others are in flight.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from include.retention.policy import Policy
from include.retention.results import PartialPurgeError
from include.retention.selections import TenantSelection
from include.retention.stores.cos import CosStore
from tests.fixtures.cos import CosBucket, connection_env
from tests.stores.test_cos import DAYS, TZ, rec_key, recordings

pytestmark = pytest.mark.servers


def _tenant_keys(tenant: str, n: int) -> list[str]:
    return sorted(rec_key(tenant, DAYS[i % len(DAYS)], i) for i in range(n))


def _watch_in_flight(store: CosStore) -> dict[str, int]:
    """The most DeleteObjects requests the client had open at one moment."""
    seen = {"now": 0, "most": 0}
    lock = threading.Lock()

    def sent(**_: Any) -> None:
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])

    def answered(**_: Any) -> None:
        with lock:
            seen["now"] -= 1

    store.client.meta.events.register("before-call.s3.DeleteObjects", sent)
    store.client.meta.events.register("after-call.s3.DeleteObjects", answered)
    return seen


def test_batches_in_flight_delete_exactly_the_tenant_and_count_each_object(
        policy: Policy, cos_bucket: CosBucket) -> None:
    keys = _tenant_keys("12", 40)
    neighbours = _tenant_keys("123", 5)  # shares the prefix "12"
    cos_bucket.put(keys + neighbours)
    store = CosStore(timezone=TZ, bucket=cos_bucket.name, batch_size=5, deletes_in_flight=4)
    seen = _watch_in_flight(store)

    result = store.purge(recordings(policy), TenantSelection("12"))

    assert (result.planned, result.deleted, result.batches) == (40, 40, 8)
    assert cos_bucket.keys() == set(neighbours)
    assert 1 < seen["most"] <= 4, seen


def test_a_refused_key_while_other_batches_are_in_flight_raises_with_the_exact_count(
        policy: Policy, private_swift: Any, private_bucket: CosBucket, private_conn: str) -> None:
    keys = _tenant_keys("12", 40)
    private_bucket.put(keys)
    private_bucket.damage(private_swift, keys[12])  # in the third batch of five
    store = CosStore(timezone=TZ, aws_conn_id=private_conn, bucket=private_bucket.name, batch_size=5,
                     deletes_in_flight=4)

    with pytest.raises(PartialPurgeError) as caught:
        store.purge(recordings(policy), TenantSelection("12"))

    left = private_bucket.keys()
    assert keys[12] in left
    assert caught.value.deleted == len(keys) - len(left), "the batches in flight were counted, nothing else"
    assert "refused 1 of 5 keys" in str(caught.value) and keys[12] in str(caught.value)
    private_bucket.repair()
    assert store.purge(recordings(policy), TenantSelection("12")).deleted == len(left)
    assert private_bucket.keys() == set()


def test_the_bound_comes_from_the_connection_and_a_bad_one_stops_the_purge_before_any_delete(
        policy: Policy, cos_bucket: CosBucket, cos_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def connection_with(tuning: object) -> str:
        conn = json.loads(connection_env(cos_endpoint))
        conn["extra"]["retention_tuning"] = tuning
        return json.dumps(conn)

    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS_TUNED", connection_with({"deletes_in_flight": 3}))
    assert CosStore(timezone=TZ, aws_conn_id="retention_cos_tuned", bucket=cos_bucket.name).deletes_in_flight == 3

    keys = _tenant_keys("12", 6)
    cos_bucket.put(keys)
    for bad in ({"deletes_in_flight": 0}, {"deletes_in_flight": 17}, {"deletes_in_flight": "4"}, [4]):
        monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS_BAD", connection_with(bad))
        store = CosStore(timezone=TZ, aws_conn_id="retention_cos_bad", bucket=cos_bucket.name)
        with pytest.raises(ValueError, match="connection 'retention_cos_bad', extra 'retention_tuning'"):
            store.purge(recordings(policy), TenantSelection("12"))
        assert cos_bucket.keys() == set(keys), bad
    with pytest.raises(ValueError, match="deletes_in_flight must be an integer from 1 to 16"):
        CosStore(timezone=TZ, bucket=cos_bucket.name, deletes_in_flight=0)

"""COS planning and deletes on an in-memory bucket (``cos_fake.FakeS3``): exact, and cheap in requests.

- ``dated_units`` (one listing of the target's head, dense tenants walked) finds exactly the
  units the old level-by-level ``Delimiter`` walk finds, for tenants whose ids share a prefix,
  keys the template does not parse, dense and sparse tenants and any page size; with a cut-off
  exactly those that end on or before it.
- ``count_each`` (one skip-scan for the expired selections of every tenant) equals ``count``
  of each selection.
- The LIST requests of planning do not grow with tenants x days.
- Batches in flight: a batch refused while others are in flight raises, and the count is
  exactly what left the bucket.
"""

from __future__ import annotations

import math
import threading
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.retention.policy import CosTarget, Policy
from include.retention.results import PartialPurgeError
from include.retention.selections import ExpiredSelection, Selection, TenantSelection
from include.retention.stores.cos_scan import KeyParser, dates_in_key_order, past, tenant_level, unit_bounds
from tests.unit.cos_fake import FakeS3, fake_store

TZ = ZoneInfo("Asia/Singapore")
TENANTS = ("1", "12", "120", "123", "1234", "13", "2")  # ids that are prefixes of one another
FIRST_DAY = date(2026, 1, 28)
FOREIGN = (
    "recordings/12/2026/13/45/bad-date.wav", "recordings/12/latest.wav", "recordings/012/2026/02/01/zero.wav",
    "recordings/12x/2026/02/01/not-a-tenant.wav", "recordings/120", "recordings/12/2026/02/010",
    "backups/12/2026-02-01/call_data.sql.gz", "backups/12/2026-2-01/call_data/short-date.sql.gz",
    "backups/120", "backups/12/2026-02-010",
)


def target(policy: Policy, name: str) -> CosTarget:
    found = policy.target(name)
    assert isinstance(found, CosTarget)
    return found


def keys_of(layout: dict[tuple[str, int], int], *, foreign: bool = True) -> set[str]:
    """Recordings and backups of three categories for {(tenant, day offset): objects}, and ``FOREIGN``."""
    keys = set(FOREIGN if foreign else ())
    for (tenant, offset), n in layout.items():
        day = FIRST_DAY + timedelta(days=offset)
        keys |= {f"recordings/{tenant}/{day:%Y/%m/%d}/call-{i:03d}.wav" for i in range(n)}
        for category in ("agent_info", "call_analytics", "call_data"):
            keys |= {f"backups/{tenant}/{day:%Y-%m-%d}/{category}/part-{i}.gz" for i in range(1 + n // 4)}
    return keys


def midnight(offset: int) -> datetime:
    day = FIRST_DAY + timedelta(days=offset)
    return datetime(day.year, day.month, day.day, tzinfo=TZ)


layouts = st.dictionaries(st.tuples(st.sampled_from(TENANTS), st.integers(0, 40)),
                          st.sampled_from([1, 1, 2, 3, 40]), max_size=40)
TARGETS = ("call_data.recordings", "call_data.call_data_backups")


def walk(store: Any, t: CosTarget) -> list[str]:
    """The old planning: the prefix tree level by level, every level a Delimiter listing."""
    template = t.prefix
    assert template is not None
    head = template.prefix()
    depth = template.text.count("/") + (template.date_format or "").count("/") - head.count("/")
    return sorted(n for n in store._walk(head, depth) if template.parse(n, whole=True))


# --------------------------------------------------------------------------- the layout rules


def test_the_policy_layouts_have_a_tenant_level_and_dates_in_key_order(policy: Policy) -> None:
    for name in TARGETS:
        template = target(policy, name).prefix
        assert template is not None and tenant_level(template) and dates_in_key_order(template)
    assert past("recordings/12/") == "recordings/120" and "recordings/12/~" < past("recordings/12/")


# --------------------------------------------------------------------------- finding units


@settings(max_examples=150, deadline=None)
@given(layout=layouts, page_size=st.sampled_from([1, 2, 3, 7, 1000]), name=st.sampled_from(TARGETS))
def test_dated_units_are_exactly_what_the_prefix_walk_finds(
        policy: Policy, layout: dict[tuple[str, int], int], page_size: int, name: str) -> None:
    keys = keys_of(layout)
    t = target(policy, name)
    store = fake_store(FakeS3(keys), page_size=page_size)
    parse = KeyParser(t.prefix)  # type: ignore[arg-type]
    every = sorted({p[0] for p in map(parse, keys) if p is not None})

    units = store.dated_units(t)

    assert [u.name for u in units] == every == walk(store, t)
    assert all(u.tenant == u.name.split("/")[1] for u in units)


@settings(max_examples=150, deadline=None)
@given(layout=layouts, page_size=st.sampled_from([1, 2, 3, 7, 1000]), name=st.sampled_from(TARGETS),
       cut=st.integers(0, 42))
def test_dated_units_before_a_cut_off_are_exactly_those_that_end_by_it(
        policy: Policy, layout: dict[tuple[str, int], int], page_size: int, name: str, cut: int) -> None:
    t = target(policy, name)
    store = fake_store(FakeS3(keys_of(layout)), page_size=page_size)
    before = midnight(cut)

    units = store.dated_units(t, before=before)

    assert units == [u for u in store.dated_units(t) if u.end <= before]


# --------------------------------------------------------------------------- counting


@settings(max_examples=150, deadline=None)
@given(layout=layouts, page_size=st.sampled_from([1, 3, 1000]), name=st.sampled_from(TARGETS),
       cuts=st.dictionaries(st.sampled_from(TENANTS), st.integers(0, 42), max_size=5),
       excluded=st.frozensets(st.sampled_from(TENANTS), max_size=2))
def test_count_each_equals_count_of_each_selection(
        policy: Policy, layout: dict[tuple[str, int], int], page_size: int, name: str,
        cuts: dict[str, int], excluded: frozenset[str]) -> None:
    t = target(policy, name)
    store = fake_store(FakeS3(keys_of(layout)), page_size=page_size)
    units = store.dated_units(t)
    selections: list[Selection] = [
        ExpiredSelection(before=midnight(cut), tenant=tenant,
                         units=tuple(u.name for u in units if u.tenant == tenant and u.end <= midnight(cut)))
        for tenant, cut in sorted(cuts.items())]
    selections.append(ExpiredSelection(before=datetime(9999, 1, 1, tzinfo=TZ), exclude_tenants=excluded,
                                       units=tuple(u.name for u in units)))
    selections.append(TenantSelection("12"))

    assert store.count_each(t, selections) == [store.count(t, s) for s in selections]


# --------------------------------------------------------------------------- requests


def plan_requests(policy: Policy, tenants: int, days: int, expired_tenants: int) -> tuple[int, int, int]:
    """LIST requests of what planning asks of recordings (units, counts, the breaker's total), new and
    old (the level walk); and the objects."""
    t = target(policy, "call_data.recordings")
    layout = {(f"77{n:04d}", d + (0 if n < expired_tenants else 10)): 1 for n in range(tenants) for d in range(days)}
    keys = {k for k in keys_of(layout, foreign=False) if k.startswith("recordings/")}
    fake = FakeS3(keys)
    store = fake_store(fake)
    cut = midnight(10)
    units = store.dated_units(t)
    selections = [ExpiredSelection(before=cut, tenant=u, units=tuple(n.name for n in units if n.tenant == u and n.end <= cut))
                  for u in sorted({n.tenant for n in units if n.end <= cut if n.tenant})]
    counts = store.count_each(t, selections)
    store.count(t, ExpiredSelection(before=datetime(9999, 1, 1, tzinfo=TZ), units=tuple(u.name for u in units)))
    assert sum(counts) == expired_tenants * 10
    new = fake.take()["ListObjectsV2"]
    walk(store, t)
    old = fake.take()["ListObjectsV2"]
    return new, old, len(keys)


def test_planning_requests_grow_with_pages_of_objects_not_with_tenants_times_days(policy: Policy) -> None:
    for tenants, days in ((200, 20), (400, 20), (200, 40)):
        new, old, objects = plan_requests(policy, tenants, days, expired_tenants=3)
        pages = math.ceil(objects / 1000)
        # units: the pages of the head; counts: one skip-scan of 3 tenants; the total: the pages again
        assert new <= 2 * pages + 3, (tenants, days, new, pages)
        assert old >= tenants * 2 > 10 * new, (tenants, days, old, new)


def test_a_cut_off_skips_a_dense_tenant_after_its_expired_units(policy: Policy) -> None:
    """Dense tenants (a page holds one unit): one request per expired unit, one to meet the cut-off."""
    t = target(policy, "call_data.recordings")
    fake = FakeS3({k for k in keys_of({(tenant, d): 40 for tenant in ("12", "123") for d in range(20)}, foreign=False)
                   if k.startswith("recordings/")})
    store = fake_store(fake, page_size=10)

    units = store.dated_units(t, before=midnight(3))

    assert [u.name for u in units] == [f"recordings/{tenant}/2026/{m:02d}/{d:02d}/" for tenant in ("12", "123")
                                       for m, d in ((1, 28), (1, 29), (1, 30))]
    assert fake.take()["ListObjectsV2"] == 2 * (3 + 1) + 1  # and one to find nothing after tenant 123


def test_unit_bounds_of_a_day_are_local_midnights(policy: Policy) -> None:
    template = target(policy, "call_data.recordings").prefix
    values = template.parse("recordings/12/2026/01/31/", whole=True)  # type: ignore[union-attr]
    assert unit_bounds(values, template, TZ) == (midnight(3), midnight(4))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- deletes in flight


@pytest.mark.parametrize("in_flight", [pytest.param(1, id="one"), pytest.param(4, id="four")])
def test_a_batch_refused_while_others_are_in_flight_raises_and_the_count_is_what_left(
        policy: Policy, in_flight: int) -> None:
    t = target(policy, "call_data.recordings")
    keys = sorted(f"recordings/12/2026/02/01/call-{i:03d}.wav" for i in range(40))
    neighbours = {f"recordings/123/2026/02/01/call-{i:03d}.wav" for i in range(5)}
    fake = FakeS3(set(keys) | neighbours)
    doomed = keys[12]  # in the third batch of five
    started = threading.Event()
    lock = threading.Lock()
    seen = {"now": 0, "most": 0}

    def on_delete(batch: list[str]) -> set[str]:
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        try:
            if doomed in batch:
                if in_flight > 1:
                    assert started.wait(5)  # answer only once a later batch is on its way too
                return {doomed}
            if batch[0] > doomed:
                started.set()
            return set()
        finally:
            with lock:
                seen["now"] -= 1

    fake.on_delete = on_delete
    store = fake_store(fake, batch_size=5, deletes_in_flight=in_flight)

    with pytest.raises(PartialPurgeError) as caught:
        store.purge(t, TenantSelection("12"))

    left = set(fake.keys)
    assert doomed in left and neighbours <= left
    assert caught.value.deleted == len(keys) + len(neighbours) - len(left), "exactly what left the bucket"
    assert "refused 1 of 5 keys" in str(caught.value)
    assert (seen["most"] > 1) == (in_flight > 1)
    fake.on_delete = None
    assert store.purge(t, TenantSelection("12")).deleted == len(left) - len(neighbours)


def test_a_request_failing_while_others_are_in_flight_raises_with_the_count_so_far(policy: Policy) -> None:
    from botocore.exceptions import ClientError

    t = target(policy, "call_data.recordings")
    keys = sorted(f"recordings/12/2026/02/01/call-{i:03d}.wav" for i in range(40))
    fake = FakeS3(keys)

    def on_delete(batch: list[str]) -> set[str]:
        if keys[20] in batch:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "DeleteObjects")
        return set()

    fake.on_delete = on_delete
    store = fake_store(fake, batch_size=5, deletes_in_flight=4)

    with pytest.raises(PartialPurgeError, match="InternalError") as caught:
        store.purge(t, TenantSelection("12"))

    assert caught.value.deleted == len(keys) - len(fake.keys) and keys[20] in fake.keys

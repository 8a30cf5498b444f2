"""MySqlStore against a real MariaDB: exactly the selected rows go, neighbours stay.

Every test seeds a few deterministic rows with known ids and compares the ids that remain
with the ids a plain Python predicate says must remain.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest

from include.retention.policy import MySqlTarget, Policy, Retention
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection, TenantSelection
from include.retention.results import PartialPurgeError, UnsupportedSelection
from include.retention.stores.mysql import MySqlStore
from include.retention.stores.mysql_sql import (
    EARLIEST,
    LATEST,
    bounds_sql,
    chunk_delete_sql,
    quote_identifier,
    walk_plan,
    walk_sql,
)
from tests.fixtures.mysql import MySqlDatabase

pytestmark = pytest.mark.servers

UTC = timezone.utc
SGT = ZoneInfo("Asia/Singapore")
CUTOFF = datetime(2026, 4, 15, tzinfo=UTC)  # inside p202604: that partition straddles it
TENANTS = ("12", "123", "7")
AGENTS = ("alice", "bob")
PHONE_A, PHONE_B = "+6591234567", "+6598765432"
PHONES = (PHONE_A, PHONE_B, None)
EXPIRED_PARTITIONS = ("p202601", "p202602", "p202603")


@dataclass(frozen=True)
class Row:
    id: int
    at: datetime  # naive UTC, as stored
    tenant: str
    agent: str | None
    phone: str | None


def seed_rows(*, skip: Callable[[Row], bool] = lambda r: False) -> list[Row]:
    """Rows through 2026 for three tenants, plus rows at and around the cut-off instant."""
    rows: list[Row] = []
    n = slot = 0
    edge = CUTOFF.replace(tzinfo=None)
    times = [
        datetime(2026, month, day, hour, 59 if hour == 23 else 0, 59 if hour == 23 else 0)
        for month in range(1, 13) for day, hour in ((1, 0), (14, 12), (28, 23))
    ] + [edge - timedelta(seconds=1), edge, edge + timedelta(seconds=1)]
    for slot, at in enumerate(times):
        for i, tenant in enumerate(TENANTS):
            n += 1
            # Agents and numbers vary independently of the tenant and of each other.
            rows.append(Row(n, at, tenant, AGENTS[(slot + i) % 2], PHONES[(slot + i) % 3]))
    return [r for r in rows if not skip(r)]


def insert_calls(db: MySqlDatabase, rows: list[Row]) -> None:
    db.insert("call_records", [
        {"id": r.id, "started_at": r.at, "tenant_id": r.tenant, "call_id": f"{r.id:032d}", "direction": "inbound",
         "agent_id": r.agent, "customer_number": r.phone, "duration_s": 60,
         "recording_key": None if r.id % 7 == 0 else f"recordings/{r.tenant}/{r.at:%Y/%m/%d}/{r.id}.mp3"}
        for r in rows
    ])


def insert_service(db: MySqlDatabase, rows: list[Row]) -> None:
    db.insert("service_records", [
        {"id": r.id, "created_at": r.at, "tenant_id": r.tenant, "call_id": f"{r.id:032d}", "agent_id": r.agent,
         "customer_number": r.phone, "rating": 5, "note_enc": None}
        for r in rows
    ])


def insert_metrics(db: MySqlDatabase, rows: list[Row]) -> None:
    db.insert("call_metrics", [
        {"id": r.id, "metric_date": r.at, "tenant_id": r.tenant, "agent_id": r.agent or "carol", "calls": 3,
         "answered": 2, "avg_handle_s": 100}
        for r in rows
    ])


def survivors(rows: list[Row], selected: Callable[[Row], bool]) -> set[int]:
    return {r.id for r in rows if not selected(r)}


def expired(before: datetime = CUTOFF) -> Callable[[Row], bool]:
    naive = before.astimezone(UTC).replace(tzinfo=None)
    return lambda r: r.at < naive


@pytest.fixture
def store(cc_mysql: MySqlDatabase) -> MySqlStore:
    s = MySqlStore()
    yield s
    s.close()


def target(policy: Policy, name: str) -> MySqlTarget:
    t = policy.target(name)
    assert isinstance(t, MySqlTarget)
    return t


def purge_and_rerun(store: MySqlStore, t: MySqlTarget, selection: Selection) -> Any:
    """Purge, check the re-count is 0, and check a second purge deletes nothing."""
    result = store.purge(t, selection)
    assert result.deleted == result.planned
    assert store.verify(t, selection) == 0
    again = store.purge(t, selection)
    assert (again.deleted, again.planned, again.batches) == (0, 0, 0)
    return result


# --------------------------------------------------------------------------- dated units


def test_dated_units_are_the_monthly_partitions_in_utc(store: MySqlStore, policy: Policy) -> None:
    units = store.dated_units(target(policy, "call_data.call_records"))
    assert [u.name for u in units] == [f"p2026{m:02d}" for m in range(1, 13)] + ["pmax"]
    assert units[0].start == EARLIEST and units[0].end == datetime(2026, 2, 1, tzinfo=UTC)
    assert units[3].start == datetime(2026, 4, 1, tzinfo=UTC) and units[3].end == datetime(2026, 5, 1, tzinfo=UTC)
    assert units[-1].start == datetime(2027, 1, 1, tzinfo=UTC) and units[-1].end == LATEST
    assert all(u.tenant is None and u.start < u.end for u in units)
    assert all(a.end == b.start for a, b in zip(units, units[1:]))
    assert store.dated_units(target(policy, "call_analytics.service_records")) == []


# --------------------------------------------------------------------------- expired


@pytest.mark.parametrize("before", [pytest.param(CUTOFF, id="utc"), pytest.param(CUTOFF.astimezone(SGT), id="sgt")])
def test_expired_drops_whole_partitions_and_deletes_straddling_rows(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy, before: datetime
) -> None:
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    listed = tuple(u.name for u in store.dated_units(t) if u.end <= before)
    assert listed == EXPIRED_PARTITIONS
    # The straddling partition, pmax and a name that is no partition are never dropped.
    selection = ExpiredSelection(before=before, units=listed + ("p202604", "pmax", "p209901"))

    result = purge_and_rerun(store, t, selection)

    assert cc_mysql.ids("call_records") == survivors(rows, expired())
    at_cutoff = {r.id for r in rows if r.at == CUTOFF.replace(tzinfo=None)}
    assert len(at_cutoff) == 3 and at_cutoff <= cc_mysql.ids("call_records")
    assert [p for p in cc_mysql.partitions("call_records") if p in EXPIRED_PARTITIONS] == []
    assert "p202604" in cc_mysql.partitions("call_records") and "pmax" in cc_mysql.partitions("call_records")
    assert result.method == "drop_partition+keyset_delete"
    assert result.details["partitions"] == list(EXPIRED_PARTITIONS)
    assert result.details["partition_rows"] == 3 * 3 * 3
    straddling = [r for r in rows if datetime(2026, 4, 1) <= r.at < CUTOFF.replace(tzinfo=None)]
    assert result.deleted == 27 + len(straddling) and result.batches == 1


def test_estimated_partition_counts_drop_the_same_partitions(cc_mysql: MySqlDatabase, policy: Policy) -> None:
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    store = MySqlStore(partition_row_counts="estimate")
    result = store.purge(t, ExpiredSelection(before=CUTOFF, units=EXPIRED_PARTITIONS))
    assert store.verify(t, ExpiredSelection(before=CUTOFF)) == 0
    store.close()
    assert cc_mysql.ids("call_records") == survivors(rows, expired())
    assert result.details["partitions"] == list(EXPIRED_PARTITIONS)
    assert result.details["partition_rows_counted"] == "estimate"


def tuned_connection(monkeypatch: pytest.MonkeyPatch, tuning: Any) -> str:
    """A copy of ``retention_mysql`` (same server, user, database) whose extra carries ``tuning``."""
    import json
    import os
    from urllib.parse import unquote, urlsplit

    uri = urlsplit(os.environ["AIRFLOW_CONN_RETENTION_MYSQL"])
    conn = {
        "conn_type": "mysql", "host": uri.hostname, "port": uri.port, "login": unquote(uri.username or ""),
        "password": unquote(uri.password or ""), "schema": uri.path.lstrip("/"),
        "extra": {"charset": "utf8mb4", "retention_tuning": tuning},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TUNED_MYSQL", json.dumps(conn))
    return "tuned_mysql"


def test_the_connection_tunes_batches_pacing_and_partition_counts(
    cc_mysql: MySqlDatabase, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = seed_rows()
    insert_calls(cc_mysql, calls)
    services = many_service_rows(cc_mysql)
    conn_id = tuned_connection(
        monkeypatch, {"batch_size": 100, "sleep_between_batches": 0.25, "partition_row_counts": "estimate"}
    )
    store = MySqlStore(mysql_conn_id=conn_id)  # the defaults a DAG task uses
    pauses: list[float] = []
    store._sleep = pauses.append  # type: ignore[method-assign]

    dropped = store.purge(target(policy, "call_data.call_records"), ExpiredSelection(before=CUTOFF, units=EXPIRED_PARTITIONS))
    batched = store.purge(target(policy, "call_analytics.service_records"), ExpiredSelection(before=CUTOFF))
    store.close()

    assert dropped.details["partition_rows_counted"] == "estimate"
    expected = [r for r in services if r.at < CUTOFF.replace(tzinfo=None)]
    assert batched.deleted == len(expected) and batched.batches == -(-len(expected) // 100)
    assert pauses and set(pauses) == {0.25}
    assert cc_mysql.ids("service_records") == {r.id for r in services} - {r.id for r in expected}


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        pytest.param({"batch": 10}, "unknown tuning ['batch']", id="unknown-key"),
        pytest.param({"batch_size": 0}, "batch_size must be an integer between 1 and 100000", id="zero-batch"),
        pytest.param({"batch_size": "500"}, "batch_size must be an integer", id="string-batch"),
        pytest.param({"sleep_between_batches": -1}, "sleep_between_batches must be a number", id="negative-sleep"),
        pytest.param({"replica_conn_id": "replica"}, "give replica_conn_id and max_replica_lag_seconds together",
                     id="replica-without-lag"),
        pytest.param({"partition_row_counts": "guess"}, "partition_row_counts must be 'exact' or 'estimate'",
                     id="bad-counts"),
        pytest.param(["batch_size", 10], "it must be a JSON object", id="not-an-object"),
    ],
)
def test_bad_connection_tuning_fails_before_anything_is_deleted(
    cc_mysql: MySqlDatabase, policy: Policy, monkeypatch: pytest.MonkeyPatch, tuning: Any, message: str
) -> None:
    services = many_service_rows(cc_mysql, n=50)
    store = MySqlStore(mysql_conn_id=tuned_connection(monkeypatch, tuning))
    with pytest.raises(ValueError, match="connection 'tuned_mysql', extra 'retention_tuning'") as failure:
        store.purge(target(policy, "call_analytics.service_records"), ExpiredSelection(before=CUTOFF))
    assert message in str(failure.value)
    assert cc_mysql.ids("service_records") == {r.id for r in services}


def test_expired_without_units_deletes_rows_and_keeps_partitions(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    t = target(policy, "call_analytics.call_metrics")
    rows = seed_rows()
    insert_metrics(cc_mysql, rows)
    before = cc_mysql.partitions("call_metrics")

    result = purge_and_rerun(store, t, ExpiredSelection(before=CUTOFF))

    assert cc_mysql.ids("call_metrics") == survivors(rows, expired())
    assert cc_mysql.partitions("call_metrics") == before
    assert result.method == "keyset_delete"


def test_expired_keeps_partitions_holding_an_excluded_tenant(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    t = target(policy, "call_data.call_records")
    # Tenant 12 has no calls in February: only that expired partition may be dropped whole.
    rows = seed_rows(skip=lambda r: r.tenant == "12" and r.at.month == 2)
    insert_calls(cc_mysql, rows)
    selection = ExpiredSelection(before=CUTOFF, exclude_tenants=frozenset({"12"}), units=EXPIRED_PARTITIONS)

    result = purge_and_rerun(store, t, selection)

    assert cc_mysql.ids("call_records") == survivors(rows, lambda r: expired()(r) and r.tenant != "12")
    remaining = cc_mysql.partitions("call_records")
    assert "p202602" not in remaining and {"p202601", "p202603"} <= set(remaining)
    assert result.details["partitions"] == ["p202602"]


def test_expired_keeps_excluded_subjects_and_their_partitions(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    held = frozenset({("12", "agent", "alice"), ("123", "phone_number", PHONE_B)})
    selection = ExpiredSelection(before=CUTOFF, exclude_subjects=held, units=EXPIRED_PARTITIONS)

    result = purge_and_rerun(store, t, selection)

    def kept(r: Row) -> bool:
        return (r.tenant == "12" and r.agent == "alice") or (r.tenant == "123" and r.phone == PHONE_B)

    assert cc_mysql.ids("call_records") == survivors(rows, lambda r: expired()(r) and not kept(r))
    assert set(EXPIRED_PARTITIONS) <= set(cc_mysql.partitions("call_records"))
    assert result.method == "keyset_delete"


def test_excluded_subject_of_a_type_the_table_lacks_changes_nothing(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    t = target(policy, "call_analytics.call_metrics")  # has an agent column, no phone column
    rows = seed_rows()
    insert_metrics(cc_mysql, rows)
    selection = ExpiredSelection(
        before=CUTOFF, exclude_subjects=frozenset({("12", "phone_number", PHONE_A)}), units=EXPIRED_PARTITIONS
    )
    result = purge_and_rerun(store, t, selection)
    assert cc_mysql.ids("call_metrics") == survivors(rows, expired())
    assert result.details["partitions"] == list(EXPIRED_PARTITIONS)


def test_expired_for_one_tenant_deletes_rows_and_never_drops_partitions(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    partitions = cc_mysql.partitions("call_records")
    # Tenant 12 has its own, shorter cut-off; 123 (same leading digits) and 7 are untouched.
    selection = ExpiredSelection(before=CUTOFF, tenant="12", units=EXPIRED_PARTITIONS)

    result = purge_and_rerun(store, t, selection)

    assert cc_mysql.ids("call_records") == survivors(rows, lambda r: expired()(r) and r.tenant == "12")
    assert cc_mysql.partitions("call_records") == partitions
    assert result.method == "keyset_delete"


def test_expired_in_an_unpartitioned_table(store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy) -> None:
    t = target(policy, "call_analytics.service_records")
    rows = seed_rows()
    insert_service(cc_mysql, rows)
    selection = ExpiredSelection(before=CUTOFF.astimezone(SGT), exclude_tenants=frozenset({"7"}))

    result = purge_and_rerun(store, t, selection)

    assert cc_mysql.ids("service_records") == survivors(rows, lambda r: expired()(r) and r.tenant != "7")
    assert result.method == "keyset_delete" and result.deleted == len(rows) - len(cc_mysql.ids("service_records"))


# --------------------------------------------------------------------------- tenants and subjects


TABLE_SEEDS: dict[str, tuple[str, Callable[[MySqlDatabase, list[Row]], None]]] = {
    "call_data.call_records": ("call_records", insert_calls),
    "call_analytics.service_records": ("service_records", insert_service),
    "call_analytics.call_metrics": ("call_metrics", insert_metrics),
}


def insert_agents(db: MySqlDatabase) -> list[Row]:
    at = datetime(2026, 3, 1)
    rows = [Row(i + 1, at, tenant, agent, None) for i, (tenant, agent) in
            enumerate((t, a) for t in TENANTS for a in ("alice", "bob", "carol"))]
    db.insert("agents", [
        {"id": r.id, "tenant_id": r.tenant, "agent_id": r.agent, "name_enc": b"x", "email_enc": b"y",
         "phone_enc": None, "role": "agent", "created_at": r.at, "updated_at": r.at}
        for r in rows
    ])
    return rows


@pytest.mark.parametrize("name", [*TABLE_SEEDS, "agent_info.agents"])
def test_tenant_selection_deletes_all_of_that_tenant_only(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy, name: str
) -> None:
    t = target(policy, name)
    if name == "agent_info.agents":
        rows = insert_agents(cc_mysql)
    else:
        rows = seed_rows()
        TABLE_SEEDS[name][1](cc_mysql, rows)
    partitions = cc_mysql.partitions(t.table)

    result = purge_and_rerun(store, t, TenantSelection("12"))

    assert cc_mysql.ids(t.table) == survivors(rows, lambda r: r.tenant == "12")
    assert result.deleted == sum(1 for r in rows if r.tenant == "12")
    assert cc_mysql.partitions(t.table) == partitions


@pytest.mark.parametrize(
    ("name", "subject_type", "subject_id", "field"),
    [
        pytest.param("call_data.call_records", "phone_number", PHONE_A, "phone", id="calls-by-phone"),
        pytest.param("call_data.call_records", "agent", "alice", "agent", id="calls-by-agent"),
        pytest.param("call_analytics.service_records", "phone_number", PHONE_A, "phone", id="service-by-phone"),
        pytest.param("call_analytics.call_metrics", "agent", "bob", "agent", id="metrics-by-agent"),
    ],
)
def test_subject_selection_deletes_that_subject_of_that_tenant_only(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy, name: str, subject_type: str, subject_id: str,
    field: str,
) -> None:
    t = target(policy, name)
    rows = seed_rows()
    TABLE_SEEDS[name][1](cc_mysql, rows)
    selection = SubjectSelection("12", subject_type, subject_id, subject_hash="h" * 64)

    result = purge_and_rerun(store, t, selection)

    assert cc_mysql.ids(t.table) == survivors(rows, lambda r: r.tenant == "12" and getattr(r, field) == subject_id)
    assert result.deleted > 0


def test_subject_selection_keeps_rows_naming_another_held_subject(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    # A hold wins over an erasure: agent alice's calls with held number A stay, as do her calls
    # with number B in another tenant's hold list (it does not hold this tenant's records).
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    held = frozenset({("12", "phone_number", PHONE_A), ("123", "phone_number", PHONE_B)})
    selection = SubjectSelection("12", "agent", "alice", subject_hash="h" * 64, exclude_subjects=held)

    def of_alice(r: Row) -> bool:
        return r.tenant == "12" and r.agent == "alice"

    withheld = {r.id for r in rows if of_alice(r) and r.phone == PHONE_A}
    assert withheld and store.count(t, selection.without_holds()) - store.count(t, selection) == len(withheld)
    keys = set(store.fetch_column(t, selection, "recording_key"))
    assert keys and not any(k.endswith(f"/{i}.mp3") for k in keys for i in withheld)  # held calls' recordings stay

    result = purge_and_rerun(store, t, selection)

    assert cc_mysql.ids(t.table) == survivors(rows, lambda r: of_alice(r) and r.phone != PHONE_A)
    assert result.deleted == sum(1 for r in rows if of_alice(r)) - len(withheld)
    assert store.count(t, selection.without_holds()) == len(withheld)  # kept, and verify() above still said 0


def test_subject_type_without_a_column_is_refused(store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy) -> None:
    t = target(policy, "call_analytics.call_metrics")
    rows = seed_rows()
    insert_metrics(cc_mysql, rows)
    selection = SubjectSelection("12", "phone_number", PHONE_A, subject_hash="h" * 64)
    for call in (store.count, store.purge, lambda t_, s: list(store.fetch_column(t_, s, "agent_id"))):
        with pytest.raises(UnsupportedSelection, match="no column for subject type 'phone_number'"):
            call(t, selection)
    assert cc_mysql.ids("call_metrics") == {r.id for r in rows}


def test_subject_ids_are_bound_values_not_sql(store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy) -> None:
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    selection = SubjectSelection("12", "agent", "x' OR '1'='1", subject_hash="h" * 64)
    assert store.purge(t, selection).deleted == 0
    assert cc_mysql.ids("call_records") == {r.id for r in rows}


def test_identifiers_outside_the_policy_grammar_are_refused_before_any_io(policy: Policy) -> None:
    bad = MySqlTarget(category="c", name="n", store="mysql", description="", retention=Retention(months=1),
                      table="call_records`; DROP TABLE agents; --", time_column="started_at")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        MySqlStore(mysql_conn_id="does_not_exist").count(bad, TenantSelection("12"))
    with pytest.raises(ValueError):
        quote_identifier("a b")


# --------------------------------------------------------------------------- dry runs, batches


@pytest.mark.parametrize(
    "selection",
    [
        pytest.param(ExpiredSelection(before=CUTOFF, units=EXPIRED_PARTITIONS), id="expired"),
        pytest.param(ExpiredSelection(before=CUTOFF, tenant="123", units=EXPIRED_PARTITIONS), id="expired-tenant"),
        pytest.param(TenantSelection("7"), id="tenant"),
        pytest.param(SubjectSelection("12", "agent", "alice", subject_hash="h" * 64), id="subject"),
    ],
)
def test_dry_run_counts_right_and_deletes_nothing(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy, selection: Selection
) -> None:
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    partitions = cc_mysql.partitions("call_records")

    result = store.purge(t, selection, dry_run=True)

    assert result.dry_run and result.deleted == 0 and result.batches == 0
    assert result.planned == store.count(t, selection) > 0
    assert cc_mysql.ids("call_records") == {r.id for r in rows}
    assert cc_mysql.partitions("call_records") == partitions
    # The real purge then deletes what the dry run counted.
    assert store.purge(t, selection).deleted == result.planned


def many_service_rows(db: MySqlDatabase, n: int = 1_050) -> list[Row]:
    start = datetime(2026, 1, 1)
    rows = [Row(i + 1, start + timedelta(minutes=37 * i), "12", "alice", PHONE_A) for i in range(n)]
    rows += [Row(n + i + 1, start + timedelta(minutes=41 * i), "123", "alice", PHONE_A) for i in range(50)]
    insert_service(db, rows)
    return rows


@pytest.mark.parametrize(
    "selection",
    [
        pytest.param(TenantSelection("12"), id="tenant"),
        pytest.param(SubjectSelection("12", "phone_number", PHONE_A, subject_hash="h" * 64), id="subject"),
        pytest.param(ExpiredSelection(before=datetime(2027, 1, 1, tzinfo=UTC), exclude_tenants=frozenset({"123"})),
                     id="expired"),
    ],
)
@pytest.mark.parametrize("range_deletes", [pytest.param(True, id="key-ranges"), pytest.param(False, id="key-lists")])
def test_batches_are_bounded(
    cc_mysql: MySqlDatabase, policy: Policy, selection: Selection, range_deletes: bool
) -> None:
    t = target(policy, "call_analytics.service_records")
    rows = many_service_rows(cc_mysql)
    store = MySqlStore(batch_size=100)
    store.range_deletes = range_deletes
    deletes: list[int] = []
    execute = store._execute

    def spy(sql: str, params: Any = ()) -> int:
        n = execute(sql, params)
        if sql.startswith("DELETE"):
            deletes.append(n)
        return n

    walks: list[str] = []
    query = store._query

    def spy_query(sql: str, params: Any = ()) -> Any:
        if "FORCE INDEX" in sql:
            walks.append(sql)
        return query(sql, params)

    store._execute = spy  # type: ignore[method-assign]
    store._query = spy_query  # type: ignore[method-assign]
    result = store.purge(t, selection)
    store.close()

    assert result.deleted == 1_050 and result.batches == 11
    assert deletes == [100] * 10 + [50]
    assert cc_mysql.ids("service_records") == {r.id for r in rows if r.tenant == "123"}
    # Consecutive keys: after the first batch, key windows are deleted without reading
    # their keys first (then one read finds nothing left); with key lists, one read a batch.
    assert len(walks) == (2 if range_deletes else 11)


@pytest.mark.parametrize("layout", ["time-order", "reverse-time-order", "blocks-with-gaps"])
def test_key_windows_delete_only_selected_rows_and_never_more_than_a_batch(
    cc_mysql: MySqlDatabase, policy: Policy, layout: str
) -> None:
    t = target(policy, "call_analytics.service_records")
    start = datetime(2026, 1, 1)
    n = 1_200
    rows = []
    for i in range(n):
        minutes = 53 * (i if layout != "reverse-time-order" else n - i)
        tenant = "12" if layout != "blocks-with-gaps" or (i // 150) % 4 else "123"
        if layout == "blocks-with-gaps" and i % 97 == 0:
            continue  # holes in the key sequence
        rows.append(Row(i + 1, start + timedelta(minutes=minutes), tenant, "bob", PHONE_A))
    insert_service(cc_mysql, rows)
    store = MySqlStore(batch_size=100)
    deletes: list[int] = []
    execute = store._execute

    def spy(sql: str, params: Any = ()) -> int:
        count = execute(sql, params)
        if sql.startswith("DELETE"):
            deletes.append(count)
        return count

    store._execute = spy  # type: ignore[method-assign]
    cutoff = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=53 * 900)
    selection = ExpiredSelection(before=cutoff, exclude_tenants=frozenset({"123"}))
    result = store.purge(t, selection)
    assert store.purge(t, selection).deleted == 0
    store.close()

    naive = cutoff.replace(tzinfo=None)
    assert cc_mysql.ids("service_records") == survivors(rows, lambda r: r.at < naive and r.tenant != "123")
    assert result.deleted == sum(deletes) and max(deletes) <= 100


def test_interleaved_rows_are_deleted_in_chunks_between_walk_positions(
    cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    """A held tenant's rows between the others': no key window is ever full, so every chunk
    is one bounds read and one DELETE between walk positions; no key list travels."""
    t = target(policy, "call_analytics.service_records")
    start = datetime(2026, 1, 1)
    rows = [Row(i + 1, start + timedelta(minutes=11 * i), TENANTS[i % 3], "bob", PHONE_A) for i in range(900)]
    insert_service(cc_mysql, rows)
    store = MySqlStore(batch_size=100)
    statements: list[tuple[str, int]] = []
    execute, query = store._execute, store._query

    def spy_execute(sql: str, params: Any = ()) -> int:
        n = execute(sql, params)
        statements.append((sql.split()[0], n))
        return n

    def spy_query(sql: str, params: Any = ()) -> Any:
        found = query(sql, params)
        if "UNION ALL" in sql:
            statements.append(("BOUNDS", len(found)))
        return found

    store._execute, store._query = spy_execute, spy_query  # type: ignore[method-assign]
    cutoff = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=11 * 750)
    selection = ExpiredSelection(before=cutoff, exclude_tenants=frozenset({"7"}))
    result = store.purge(t, selection)
    store.close()

    selected = lambda r: r.at < cutoff.replace(tzinfo=None) and r.tenant != "7"  # noqa: E731
    assert cc_mysql.ids("service_records") == survivors(rows, selected)
    assert result.deleted == result.planned == sum(map(selected, rows)) == 500
    # Five full chunks (the 100th row found), then a read that finds nothing left.
    assert statements == [("BOUNDS", 3), ("DELETE", 100)] * 5 + [("BOUNDS", 0)]
    assert result.batches == 5


def test_a_row_that_leaves_the_selection_between_bounds_and_delete_stays(
    cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    """The chunk DELETE repeats the selection: a row held after its chunk's bounds were read
    is not deleted, though it lies between them, and the count says so."""
    t = target(policy, "call_analytics.service_records")
    start = datetime(2026, 1, 1)
    rows = [Row(i + 1, start + timedelta(minutes=13 * i), TENANTS[i % 2], "bob", PHONE_A) for i in range(300)]
    insert_service(cc_mysql, rows)
    store = MySqlStore(batch_size=100)
    query = store._query
    moved: list[int] = []

    def spy_query(sql: str, params: Any = ()) -> Any:
        found = query(sql, params)
        if "UNION ALL" in sql and not moved:
            moved.append(50)  # inside the first chunk, after its first row
            cc_mysql.execute("UPDATE service_records SET tenant_id = '7' WHERE id = %s", (50,))
        return found

    store._query = spy_query  # type: ignore[method-assign]
    selection = ExpiredSelection(before=datetime(2027, 1, 1, tzinfo=UTC), exclude_tenants=frozenset({"7"}))
    result = store.purge(t, selection)
    store.close()

    assert moved and cc_mysql.ids("service_records") == {50}
    assert result.deleted == 299 and result.planned == 300


@pytest.mark.parametrize("range_deletes", [pytest.param(True, id="key-ranges"), pytest.param(False, id="key-lists")])
def test_partitioned_keyset_walk_is_bounded_and_complete(
    cc_mysql: MySqlDatabase, policy: Policy, range_deletes: bool
) -> None:
    t = target(policy, "call_data.call_records")
    start = datetime(2026, 3, 1)
    # Many rows share a timestamp, so batches end inside runs of equal times; the excluded
    # tenant's rows sit between the selected ones, inside the key ranges deleted.
    rows = [Row(i + 1, start + timedelta(hours=(i // 7) * 5), TENANTS[i % 3], "bob", PHONE_B) for i in range(1_000)]
    insert_calls(cc_mysql, rows)
    store = MySqlStore(batch_size=64)
    store.range_deletes = range_deletes
    result = store.purge(t, ExpiredSelection(before=CUTOFF, exclude_tenants=frozenset({"7"})))
    store.close()
    selected = lambda r: r.at < CUTOFF.replace(tzinfo=None) and r.tenant != "7"  # noqa: E731
    assert cc_mysql.ids("call_records") == survivors(rows, selected)
    assert result.deleted == sum(map(selected, rows)) and result.batches == -(-result.deleted // 64)


# --------------------------------------------------------------------------- failure half-way


def kill_on_call(db: MySqlDatabase, store: MySqlStore, at_call: int) -> Callable[[float], None]:
    """A pacing sleep that kills the store's connection from a second connection."""
    calls = {"n": 0}

    def sleep(_seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == at_call:
            db.execute("KILL CONNECTION %s", (store._conn.thread_id(),))

    return sleep


def test_killed_connection_raises_partial_purge_error_and_a_rerun_finishes(
    cc_mysql: MySqlDatabase, policy: Policy
) -> None:
    t = target(policy, "call_analytics.service_records")
    rows = many_service_rows(cc_mysql)
    store = MySqlStore(batch_size=100, sleep_between_batches=0.001)
    store._sleep = kill_on_call(cc_mysql, store, at_call=3)
    selection = TenantSelection("12")

    with pytest.raises(PartialPurgeError) as caught:
        store.purge(t, selection)

    assert caught.value.deleted == 300
    assert "2013" in str(caught.value) or "2006" in str(caught.value)
    assert store.count(t, selection) == 750
    store._sleep = lambda s: None
    assert store.purge(t, selection).deleted == 750
    assert store.verify(t, selection) == 0
    assert cc_mysql.ids("service_records") == {r.id for r in rows if r.tenant == "123"}
    store.close()


def test_connection_killed_by_another_thread_mid_purge(cc_mysql: MySqlDatabase, policy: Policy) -> None:
    t = target(policy, "call_analytics.service_records")
    many_service_rows(cc_mysql)
    store = MySqlStore(batch_size=50, sleep_between_batches=0.001)
    second_batch = threading.Event()
    calls = {"n": 0}

    def sleep(_s: float) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            second_batch.set()
            killer.join(5)

    def kill() -> None:
        second_batch.wait(5)
        cc_mysql.execute("KILL CONNECTION %s", (store._conn.thread_id(),))

    killer = threading.Thread(target=kill)
    killer.start()
    store._sleep = sleep
    with pytest.raises(PartialPurgeError) as caught:
        store.purge(t, TenantSelection("12"))
    assert caught.value.deleted == 100
    store._sleep = lambda s: None
    assert store.purge(t, TenantSelection("12")).deleted == 950
    store.close()


# --------------------------------------------------------------------------- pacing


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def paced_store(lags: list[float | None], timeout: float) -> tuple[MySqlStore, FakeTime]:
    store = MySqlStore(batch_size=500, replica_conn_id="retention_mysql_replica", max_replica_lag_seconds=2,
                       replica_wait_timeout_seconds=timeout)
    fake = FakeTime()
    store._clock, store._sleep = fake.clock, fake.sleep
    queue = list(lags)
    store.replica_lag = lambda: queue.pop(0) if len(queue) > 1 else queue[0]  # type: ignore[method-assign]
    return store, fake


def test_purge_pauses_while_the_replica_lags(cc_mysql: MySqlDatabase, policy: Policy) -> None:
    t = target(policy, "call_analytics.service_records")
    many_service_rows(cc_mysql)
    store, fake = paced_store([30, None, 5, 1], timeout=60)
    assert store.purge(t, TenantSelection("12")).deleted == 1_050
    assert fake.sleeps[:3] == [1.0, 1.0, 1.0]
    store.close()


def test_purge_gives_up_when_the_replica_stays_behind(cc_mysql: MySqlDatabase, policy: Policy) -> None:
    t = target(policy, "call_analytics.service_records")
    rows = many_service_rows(cc_mysql)
    store, fake = paced_store([30], timeout=10)
    with pytest.raises(PartialPurgeError, match=r"replica lag stayed above 2 s for 10 s") as caught:
        store.purge(t, TenantSelection("12"))
    assert caught.value.deleted == 0 and 10 <= fake.now <= 12
    assert cc_mysql.ids("service_records") == {r.id for r in rows}
    store.close()


def test_a_replica_connection_that_is_no_replica_fails_clearly(cc_mysql: MySqlDatabase, policy: Policy,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_MYSQL_REPLICA", cc_mysql.uri)
    store = MySqlStore(replica_conn_id="retention_mysql_replica", max_replica_lag_seconds=5)
    with pytest.raises(RuntimeError, match="is not a replica"):
        store.replica_lag()
    store.close()


def test_pacing_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="together"):
        MySqlStore(max_replica_lag_seconds=3)
    with pytest.raises(ValueError):
        MySqlStore(sleep_between_batches=-1)
    with pytest.raises(ValueError):
        MySqlStore(batch_size=0)


# --------------------------------------------------------------------------- fetch_column, plans


@pytest.mark.parametrize("batch", [3, 5_000])
def test_fetch_column_streams_a_subjects_values(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy, batch: int
) -> None:
    t = target(policy, "call_data.call_records")
    rows = seed_rows()
    insert_calls(cc_mysql, rows)
    expected = [
        f"recordings/{r.tenant}/{r.at:%Y/%m/%d}/{r.id}.mp3" for r in rows
        if r.tenant == "12" and r.phone == PHONE_A and r.id % 7 != 0
    ]
    subject = SubjectSelection("12", "phone_number", PHONE_A, subject_hash="h" * 64)
    got = list(store.fetch_column(t, subject, "recording_key", batch))
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))
    tenant = list(store.fetch_column(t, TenantSelection("123"), "recording_key", batch))
    assert len(tenant) == sum(1 for r in rows if r.tenant == "123" and r.id % 7 != 0)
    assert all(k.startswith("recordings/123/") for k in tenant)
    assert cc_mysql.ids("call_records") == {r.id for r in rows}


@pytest.mark.parametrize("name", ["call_data.call_records", "call_analytics.service_records"])
@pytest.mark.parametrize(
    "selection",
    [
        pytest.param(ExpiredSelection(before=CUTOFF, exclude_tenants=frozenset({"7"})), id="expired"),
        pytest.param(ExpiredSelection(before=CUTOFF, tenant="12"), id="expired-tenant"),
        pytest.param(TenantSelection("12"), id="tenant"),
        pytest.param(SubjectSelection("12", "phone_number", PHONE_A, subject_hash="h" * 64), id="subject"),
    ],
)
def test_batch_queries_read_an_index_range_without_sorting_the_selection(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy, name: str, selection: Selection
) -> None:
    t = target(policy, name)
    info = store.table_info(t)
    plan = walk_plan(t, selection, info)
    after = ["2026-02-01 00:00:00" if c == t.time_column else ("x" if c == t.tenant_column else 5)
             for c in plan.order]
    for position in (None, after):
        sql, params, plan, _ = walk_sql(t, selection, info, limit=100, after=position)
        (row,) = cc_mysql.query("EXPLAIN " + sql, params)
        access, key, extra = row[3], row[5], row[-1]
        assert access in ("range", "ref") and key != "PRIMARY", row
        if isinstance(selection, SubjectSelection) and t.table == "call_records":
            # A partitioned table sorts a subject's own rows (few); never the table or a range.
            assert key == "ix_tenant_customer", row
        else:
            assert "filesort" not in extra, row


@pytest.mark.parametrize(
    "selection",
    [
        pytest.param(ExpiredSelection(before=CUTOFF), id="expired"),
        pytest.param(ExpiredSelection(before=CUTOFF, exclude_tenants=frozenset({"7"})), id="expired-held-tenant"),
        pytest.param(ExpiredSelection(before=CUTOFF, tenant="12"), id="expired-tenant"),
        pytest.param(TenantSelection("12"), id="tenant"),
    ],
)
def test_chunk_bounds_and_delete_read_an_index_range_without_sorting(
    store: MySqlStore, cc_mysql: MySqlDatabase, policy: Policy, selection: Selection
) -> None:
    t = target(policy, "call_analytics.service_records")
    insert_service(cc_mysql, seed_rows())
    # Statistics of these rows, not of what earlier tests left and emptied: on a table this
    # small, stale ones tip the optimizer to an index_merge that a real table never gets.
    cc_mysql.query("ANALYZE TABLE service_records")
    info = store.table_info(t)
    plan = walk_plan(t, selection, info)
    assert not plan.checks_ties
    after = ["2026-02-01 00:00:00" if c == t.time_column else 5 for c in plan.order]
    upto = ["2026-03-01 00:00:00" if c == t.time_column else 60 for c in plan.order]
    for position in (None, after):
        sql, params, _, _ = bounds_sql(t, selection, info, limit=100, after=position)
        explained = cc_mysql.query("EXPLAIN " + sql, params)
        parts = [row for row in explained if row[2] == "service_records"]
        assert len(parts) == 3, explained
        for row in parts:
            assert row[3] in ("range", "ref") and row[5] == plan.index and "filesort" not in row[-1], row
        sql, params = chunk_delete_sql(t, selection, info, after=position, upto=upto, limit=100)
        (row,) = cc_mysql.query("EXPLAIN " + sql, params)
        assert row[3] in ("range", "ref") and "filesort" not in (row[-1] or ""), row


# --------------------------------------------------------------------------- least privilege


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("DROP TABLE `service_records`", id="drop-a-listed-unpartitioned-table"),
        pytest.param("ALTER TABLE `service_records` ADD COLUMN `x` INT", id="alter-an-unpartitioned-table"),
        pytest.param("DELETE FROM `tenants`", id="delete-from-a-read-only-table"),
        pytest.param("UPDATE `call_records` SET `duration_s` = 0", id="update-a-listed-table"),
        pytest.param("INSERT INTO `keywords` (`tenant_id`, `keyword`, `updated_at`) VALUES ('12', 'k', NOW())",
                     id="insert-into-a-listed-table"),
        pytest.param("CREATE TABLE `intruder` (`id` INT)", id="create-a-table"),
        pytest.param("SELECT COUNT(*) FROM `mysql`.`user`", id="read-a-table-not-listed"),
    ],
)
def test_the_store_user_is_refused_outside_its_grants(cc_mysql: MySqlDatabase, statement: str) -> None:
    """The store connects as the session's least-privilege user (tests/fixtures/mysql.py)."""
    import MySQLdb
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    conn = MySqlHook(mysql_conn_id="retention_mysql").get_conn()
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER()")
        assert not str(cur.fetchone()[0]).startswith("root@")
        with pytest.raises(MySQLdb.Error) as refused:
            cur.execute(statement)
        assert refused.value.args[0] in (1142, 1044), refused.value  # table / database access denied
    finally:
        conn.close()
    assert {"service_records", "tenants", "call_records"} <= {r[0] for r in cc_mysql.query("SHOW TABLES")}
    assert "x" not in {r[0] for r in cc_mysql.query("SHOW COLUMNS FROM `service_records`")}

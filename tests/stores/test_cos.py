"""CosStore against a real S3 server (Swift s3api): exact selections, batching, dry runs,
reruns, Content-MD5, per-key errors, a failure half-way and versioned buckets.

Every test has a bucket of its own (``cc-test-<random>``), emptied and deleted afterwards.
Tenants 12 and 123 share a prefix; backups of three categories share a day prefix.
The failure tests run on a private Swift node on a spare port, stopped by pid.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from devservers.procs import Endpoint
from include.retention.identifiers import IdentifierError, Template
from include.retention.policy import CosTarget, Policy, Retention
from include.retention.selections import DatedUnit, ExpiredSelection, SubjectSelection, TenantSelection
from include.retention.results import PartialPurgeError, UnsupportedSelection
from include.retention.stores.cos import CosStore
from include.retention.stores.cos_bucket import next_version_marker
from include.retention.stores.cos_client import iso_timestamp
from include.retention.stores.cos_scan import KeyParser
from tests.fixtures.cos import CosBucket, SeededBucket, connection_env, new_bucket, plain_client

pytestmark = pytest.mark.servers

TZ = ZoneInfo("Asia/Singapore")
DAYS = (date(2026, 5, 30), date(2026, 5, 31), date(2026, 6, 1))
TENANTS = ("12", "123")
CATEGORIES = ("agent_info", "call_data", "call_analytics")
#: Keys under the targets' prefixes that the templates do not parse: never ours to delete.
FOREIGN = (
    "recordings/12/2026/13/45/bad-date.wav",
    "recordings/12/latest.wav",
    "recordings/012/2026/05/31/leading-zero.wav",
    "recordings/12x/2026/05/31/not-a-tenant.wav",
    "backups/12/2026-05-31/agent_info.sql.gz",
    "backups/12/2026-5-31/agent_info/short-date.sql.gz",
)


def recordings(policy: Policy) -> CosTarget:
    target = policy.target("call_data.recordings")
    assert isinstance(target, CosTarget)
    return target


def backups(policy: Policy, category: str = "agent_info") -> CosTarget:
    target = policy.target(f"{category}.{category}_backups")
    assert isinstance(target, CosTarget)
    return target


def rec_key(tenant: str, day: date, i: int) -> str:
    return f"recordings/{tenant}/{day:%Y/%m/%d}/call-{i:05d}.wav"


def backup_key(tenant: str, day: date, category: str, i: int = 0) -> str:
    return f"backups/{tenant}/{day:%Y-%m-%d}/{category}/part-{i}.sql.gz"


def layout(per_day: int = 2) -> dict[str, set[str]]:
    """Keys by owner: ("rec", tenant, day) and ("bak", tenant, day, category) as strings."""
    groups: dict[str, set[str]] = {"foreign": set(FOREIGN)}
    for tenant in TENANTS:
        for day in DAYS:
            groups[f"rec:{tenant}:{day}"] = {rec_key(tenant, day, i) for i in range(per_day)}
            for category in CATEGORIES:
                groups[f"bak:{tenant}:{day}:{category}"] = {backup_key(tenant, day, category)}
    return groups


def union(groups: dict[str, set[str]], *names: str) -> set[str]:
    return set().union(*(groups[n] for n in names))


def everything(groups: dict[str, set[str]]) -> set[str]:
    return set().union(*groups.values())


@pytest.fixture(scope="module")
def layout_bucket(cos_endpoint: Endpoint) -> Iterator[SeededBucket]:
    bucket = new_bucket(cos_endpoint, versioned=False)
    try:
        yield SeededBucket(bucket, everything(layout()))
    finally:
        bucket.destroy()


@pytest.fixture
def seeded(layout_bucket: SeededBucket) -> Iterator[tuple[CosBucket, dict[str, set[str]]]]:
    """The layout, whole at the start of every test (what a test deletes is put back after)."""
    yield layout_bucket.bucket, layout()
    layout_bucket.restore()


def store_for(bucket: CosBucket, **kwargs: Any) -> CosStore:
    return CosStore(timezone=TZ, bucket=bucket.name, **kwargs)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ)


# --------------------------------------------------------------------------- no server


def test_key_parser_agrees_with_template_parse(policy: Policy) -> None:
    for target in (recordings(policy), backups(policy), backups(policy, "call_data")):
        template = target.prefix
        assert template is not None
        parse = KeyParser(template)
        samples = [rec_key("12", DAYS[0], 1), backup_key("123", DAYS[1], "agent_info"),
                   backup_key("1", DAYS[2], "call_data"), *FOREIGN,
                   "recordings/12/2026/02/30/feb-30.wav", "", "backups/"]
        for key in samples:
            parsed = parse(key)
            expected = template.parse(key)
            assert (parsed[1] if parsed else None) == expected, key
            if parsed:
                assert template.parse(parsed[0], whole=True) == expected


@pytest.mark.parametrize(
    "value",
    ["2026-05-01T00:00:00.000Z", "2026-05-01T12:34:56Z", "2026-05-01T12:34:56.123456Z",
     "Fri, 01 May 2026 00:00:00 GMT", "1780000000", "2026-05-01T08:00:00+08:00"],
)
def test_fast_timestamps_read_what_botocore_reads(value: str) -> None:
    from botocore.utils import parse_timestamp

    assert iso_timestamp(value) == parse_timestamp(value)


def test_version_markers_survive_swifts_null_marker() -> None:
    t = [datetime(2026, 5, 1, 0, 0, s, tzinfo=TZ) for s in range(3)]
    listed = [("a", "3.0", t[2]), ("a", "2.0", t[1]), ("b", "1.0", t[0])]
    assert next_version_marker({"NextKeyMarker": "a", "NextVersionIdMarker": "2.0"}, listed[:2]) == ("a", "2.0")
    # Swift 2.30 says "null": continue after the oldest version listed of that key
    assert next_version_marker({"NextKeyMarker": "a", "NextVersionIdMarker": "null"}, listed[:2]) == ("a", "2.0")
    assert next_version_marker({"NextKeyMarker": "b"}, listed) == ("b", "1.0")
    assert next_version_marker({"NextKeyMarker": "c", "NextVersionIdMarker": "null"},
                                [("c", "null", t[0])]) == ("c", None)


def test_constructor_does_no_io_and_checks_batch_size() -> None:
    CosStore(timezone=TZ, aws_conn_id="does_not_exist")  # no connection looked up yet
    with pytest.raises(ValueError, match="at most 1000"):
        CosStore(timezone=TZ, batch_size=1001)
    with pytest.raises(ValueError, match="page_size"):
        CosStore(timezone=TZ, page_size=0)


def test_errors_in_a_stubbed_response_raise(policy: Policy) -> None:
    """The same check as the real one below, for a server that cannot fail one key (moto).

    Three batches in flight at once: the stub hands its answers out in the order the requests
    come, so which batch hears ``Errors`` is not fixed; what is fixed is that the purge raises
    and counts every key sent but the refused one.
    """
    import boto3

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    store = CosStore(timezone=TZ, bucket="b", batch_size=2, deletes_in_flight=4)
    store._client = client
    store._versioned["b"] = False
    keys = [rec_key("12", DAYS[0], i) for i in range(6)]
    sent: list[int] = []
    client.meta.events.register("before-parameter-build.s3.DeleteObjects",
                                lambda params, **_: sent.append(len(params["Delete"]["Objects"])))
    with Stubber(client) as stub:
        stub.add_response("list_objects_v2", {"Contents": [{"Key": k} for k in keys], "IsTruncated": False})
        stub.add_response("delete_objects", {})
        stub.add_response("delete_objects", {"Errors": [{"Key": keys[1], "Code": "AccessDenied", "Message": "no"}]})
        stub.add_response("delete_objects", {})
        with pytest.raises(PartialPurgeError) as caught:
            store.purge(recordings(policy), TenantSelection("12"))
    assert caught.value.deleted == sum(sent) - 1 == 5
    assert "1 of 2 keys" in str(caught.value) and "AccessDenied" in str(caught.value)


# --------------------------------------------------------------------------- tenant


def test_tenant_purge_deletes_exactly_the_tenants_recordings(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    target = recordings(policy)
    selected = union(groups, *(f"rec:12:{d}" for d in DAYS))
    assert store.count(target, TenantSelection("12")) == len(selected)

    result = store.purge(target, TenantSelection("12"))

    assert (result.planned, result.deleted, result.dry_run) == (len(selected), len(selected), False)
    assert bucket.keys() == everything(groups) - selected  # 123's recordings, backups, foreign keys stay
    assert store.verify(target, TenantSelection("12")) == 0
    rerun = store.purge(target, TenantSelection("12"))
    assert (rerun.planned, rerun.deleted) == (0, 0)


def test_tenant_purge_of_one_backup_category_leaves_the_others(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    selected = union(groups, *(f"bak:123:{d}:agent_info" for d in DAYS))

    result = store.purge(backups(policy), TenantSelection("123"))

    assert result.deleted == len(selected) == 3
    assert bucket.keys() == everything(groups) - selected


def test_dry_run_counts_and_deletes_nothing(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    result = store.purge(recordings(policy), TenantSelection("123"), dry_run=True)
    assert (result.planned, result.deleted, result.dry_run) == (6, 0, True)
    assert bucket.keys() == everything(groups)


def test_subject_selection_on_recordings_points_to_purge_keys(policy: Policy) -> None:
    store = CosStore(timezone=TZ, bucket="unused")
    with pytest.raises(UnsupportedSelection, match="purge_keys"):
        store.count(recordings(policy), SubjectSelection("12", "agent", "a1", "h"))


def test_bad_tenant_ids_never_reach_the_store(policy: Policy) -> None:
    store = CosStore(timezone=TZ, bucket="unused")
    for tenant in ("1*", "12/", "", "012"):
        with pytest.raises(IdentifierError):
            store.count(recordings(policy), TenantSelection(tenant))


# --------------------------------------------------------------------------- expired units


def test_expired_units_delete_exactly_those_days(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    target = recordings(policy)
    units = (f"recordings/12/{DAYS[0]:%Y/%m/%d}/", f"recordings/12/{DAYS[1]:%Y/%m/%d}/")
    selection = ExpiredSelection(before=midnight(DAYS[2]), tenant="12", units=units)
    selected = union(groups, f"rec:12:{DAYS[0]}", f"rec:12:{DAYS[1]}")

    assert store.count(target, selection) == len(selected)
    result = store.purge(target, selection)

    assert result.deleted == len(selected)
    assert bucket.keys() == everything(groups) - selected  # 12's June 1st, all of 123 stay
    assert store.purge(target, selection).deleted == 0


def test_expired_units_of_all_tenants_respect_exclusions(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    target = backups(policy, "call_data")
    day = DAYS[1]
    units = tuple(f"backups/{t}/{day:%Y-%m-%d}/call_data/" for t in TENANTS)
    before = midnight(day + timedelta(days=1))

    held = store.purge(target, ExpiredSelection(before=before, units=units, exclude_tenants=frozenset({"123"})))
    assert held.deleted == 1
    assert bucket.keys() == everything(groups) - groups[f"bak:12:{day}:call_data"]

    subject_held = ExpiredSelection(before=before, units=units, exclude_subjects=frozenset({("123", "agent", "a1")}))
    assert store.count(target, subject_held) == 0  # 12's is gone; 123 is kept whole for its held subject


def test_expired_units_are_read_by_a_skip_scan(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    """Between two selected days the listing jumps (StartAfter) instead of paging through."""
    bucket, groups = seeded
    store = store_for(bucket, page_size=1)
    calls: list[dict[str, Any]] = []
    store.client.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
    )
    units = (f"recordings/12/{DAYS[0]:%Y/%m/%d}/", f"recordings/12/{DAYS[2]:%Y/%m/%d}/")
    result = store.purge(recordings(policy), ExpiredSelection(before=midnight(DAYS[2] + timedelta(days=1)),
                                                              tenant="12", units=units))
    assert result.deleted == 4
    assert [c["StartAfter"] for c in calls if "StartAfter" in c] == [u[:-1] for u in units]
    assert result.details["listing_requests"] == 6  # 2 + 1 page of the day between + 2 + 1 past the end
    assert bucket.keys() == everything(groups) - union(groups, f"rec:12:{DAYS[0]}", f"rec:12:{DAYS[2]}")


@pytest.mark.parametrize(
    ("unit", "tenant", "match"),
    [
        pytest.param("recordings/123/2026/05/30/", "12", "not of tenant 12", id="other-tenant"),
        pytest.param("recordings/12/2026/05/30", None, "not a prefix rendered", id="no-trailing-slash"),
        pytest.param("recordings/12/2026/05/", None, "not a prefix rendered", id="a-month-not-a-day"),
        pytest.param("recordings/12/2026/05/30/x/", None, "not a prefix rendered", id="deeper"),
        pytest.param("recordings/12/2026/06/01/", None, "after the cut-off", id="not-before-cut-off"),
    ],
)
def test_bad_units_are_refused_before_anything_is_deleted(
    policy: Policy, seeded: tuple[CosBucket, dict], unit: str, tenant: str | None, match: str
) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    good = "recordings/12/2026/05/31/"
    with pytest.raises(ValueError, match=match):
        store.purge(recordings(policy), ExpiredSelection(before=midnight(DAYS[2]), tenant=tenant, units=(good, unit)))
    assert bucket.keys() == everything(groups)


def test_dated_units_walk_the_prefix_tree(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, _ = seeded
    store = store_for(bucket)
    units = store.dated_units(recordings(policy))
    assert [(u.tenant, u.name) for u in units] == sorted(
        [(t, f"recordings/{t}/{d:%Y/%m/%d}/") for t in TENANTS for d in DAYS], key=lambda x: x[1]
    )
    assert units[0] == DatedUnit(
        name="recordings/12/2026/05/30/", start=midnight(DAYS[0]), end=midnight(DAYS[1]), tenant="12"
    )
    assert str(units[0].start.tzinfo) == "Asia/Singapore"
    agent_backups = store.dated_units(backups(policy))
    assert {u.name for u in agent_backups} == {f"backups/{t}/{d:%Y-%m-%d}/agent_info/" for t in TENANTS for d in DAYS}


def test_dated_units_then_expiry_round_trip(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    """What the daily DAG does: list units, keep those ending by the cut-off, purge them."""
    bucket, groups = seeded
    store = store_for(bucket)
    target = recordings(policy)
    cut = midnight(DAYS[1])
    expired = tuple(u.name for u in store.dated_units(target) if u.end <= cut)
    assert expired == ("recordings/12/2026/05/30/", "recordings/123/2026/05/30/")
    result = store.purge(target, ExpiredSelection(before=cut, units=expired))
    assert result.deleted == 4
    assert bucket.keys() == everything(groups) - union(groups, f"rec:12:{DAYS[0]}", f"rec:123:{DAYS[0]}")


# --------------------------------------------------------------------------- explicit keys


def test_explicit_keys_delete_only_those_that_exist(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    target = recordings(policy)
    chosen = [rec_key("12", DAYS[0], 0), rec_key("12", DAYS[0], 1), rec_key("12", DAYS[2], 1)]
    missing = rec_key("12", DAYS[1], 99)  # in MySQL, but never uploaded (or already gone)

    assert store.count_keys(target, "12", [*chosen, missing]) == 3
    result = store.purge_keys(target, "12", [*chosen, missing, chosen[0]])

    assert (result.planned, result.deleted) == (3, 3)
    assert bucket.keys() == everything(groups) - set(chosen)
    assert store.purge_keys(target, "12", chosen).deleted == 0


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(rec_key("123", DAYS[0], 0), id="other-tenant"),
        pytest.param("recordings/12/latest.wav", id="not-under-a-day"),
        pytest.param(backup_key("12", DAYS[0], "agent_info"), id="other-target"),
    ],
)
def test_explicit_keys_outside_the_tenant_are_refused(policy: Policy, seeded: tuple[CosBucket, dict], key: str) -> None:
    bucket, groups = seeded
    store = store_for(bucket)
    with pytest.raises(ValueError, match="key #1 ") as caught:
        store.purge_keys(recordings(policy), "12", [rec_key("12", DAYS[0], 0), key])
    assert key not in str(caught.value)  # the key came from a database column: not echoed
    assert bucket.keys() == everything(groups)


# --------------------------------------------------------------------------- batching


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("moto", id="on-private-moto"),
        pytest.param("swift", id="on-swift-slow", marks=pytest.mark.slow),
    ],
)
def test_more_than_a_thousand_objects_go_in_bounded_batches(
    policy: Policy, server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,010 objects: two listing pages and two DeleteObjects of at most 1,000 keys.

    Swift on two shared cores writes and deletes ~50 objects/s, so the Swift run of this
    test takes about a minute and runs only with RETENTION_COS_SLOW_TESTS=1; the bounded
    batches are shown on Swift by the small-batch test below and by the benchmark.
    """
    if server == "swift" and os.environ.get("RETENTION_COS_SLOW_TESTS") != "1":
        pytest.skip("set RETENTION_COS_SLOW_TESTS=1 to run the 1,010-object test on Swift")
    moto = request.getfixturevalue("private_moto") if server == "moto" else None
    endpoint = moto.endpoint if moto else request.getfixturevalue("cos_endpoint")
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS_VOLUME", connection_env(endpoint))
    bucket = new_bucket(endpoint, versioned=False)
    try:
        target = recordings(policy)
        keys = {rec_key("12", DAYS[i % 3], i) for i in range(1_010)}
        neighbours = {rec_key("123", DAYS[0], i) for i in range(5)}
        if moto:
            moto.seed(bucket.name, keys | neighbours)
        else:
            bucket.put(keys | neighbours)
        store = CosStore(timezone=TZ, aws_conn_id="retention_cos_volume", bucket=bucket.name)

        dry = store.purge(target, TenantSelection("12"), dry_run=True)
        assert (dry.planned, dry.deleted, dry.batches) == (1_010, 0, 0)
        sizes: list[int] = []
        store.client.meta.events.register(
            "before-call.s3.DeleteObjects", lambda params, **_: sizes.append(params["body"].count(b"<Key>"))
        )
        result = store.purge(target, TenantSelection("12"))

        assert (result.planned, result.deleted, result.batches) == (1_010, 1_010, 2)
        assert sizes == [1_000, 10] and result.details["listing_requests"] == 2
        assert bucket.keys() == neighbours
    finally:
        bucket.destroy()


def test_batch_size_bounds_every_delete_objects(policy: Policy, seeded: tuple[CosBucket, dict]) -> None:
    bucket, groups = seeded
    store = store_for(bucket, batch_size=4)
    sizes: list[int] = []
    store.client.meta.events.register(
        "before-call.s3.DeleteObjects", lambda params, **_: sizes.append(params["body"].count(b"<Key>"))
    )
    result = store.purge(recordings(policy), TenantSelection("123"))
    assert (result.deleted, result.batches, sizes) == (6, 2, [4, 2])
    assert bucket.keys() == everything(groups) - union(groups, *(f"rec:123:{d}" for d in DAYS))


# --------------------------------------------------------------------------- Content-MD5


def test_delete_objects_needs_content_md5_and_the_store_sends_it(
    policy: Policy, cos_bucket: CosBucket, cos_endpoint: Any, s3_kind: str
) -> None:
    if s3_kind != "swift-s3api":
        pytest.skip(f"needs Swift s3api (running: {s3_kind})")
    keys = [rec_key("12", DAYS[0], i) for i in range(3)]
    cos_bucket.put(keys)
    plain = plain_client(cos_endpoint)
    sent: list[dict[str, str]] = []
    plain.meta.events.register("before-send.s3.DeleteObjects", lambda request, **_: sent.append(dict(request.headers)))
    with pytest.raises(ClientError) as refused:
        plain.delete_objects(Bucket=cos_bucket.name, Delete={"Objects": [{"Key": keys[0]}]})
    assert refused.value.response["Error"]["Code"] == "InvalidRequest"
    assert "Content-MD5" in refused.value.response["Error"]["Message"]
    assert "Content-MD5" not in sent[0]  # botocore >= 1.36 sends a CRC32 instead
    assert cos_bucket.keys() == set(keys)

    store = store_for(cos_bucket)
    ours: list[dict[str, str]] = []
    store.client.meta.events.register(
        "before-send.s3.DeleteObjects", lambda request, **_: ours.append(dict(request.headers))
    )
    assert store.purge(recordings(policy), TenantSelection("12")).deleted == 3
    assert "Content-MD5" in ours[0]
    assert not [h for h in ours[0] if h.lower().startswith("x-amz-checksum-")]
    assert cos_bucket.keys() == set()


# --------------------------------------------------------------------------- failures (private node)


def test_errors_in_the_response_raise_with_counts(
    policy: Policy, private_swift: Any, private_bucket: CosBucket, private_conn: str
) -> None:
    """A disk that refuses writes to one object's directory: Swift reports that key in Errors."""
    keys = sorted(rec_key("12", DAYS[0], i) for i in range(5))
    private_bucket.put(keys)
    private_bucket.damage(private_swift, keys[2])
    store = CosStore(timezone=TZ, aws_conn_id=private_conn, bucket=private_bucket.name)

    with pytest.raises(PartialPurgeError) as caught:
        store.purge(recordings(policy), TenantSelection("12"))

    assert caught.value.deleted == 4
    assert "refused 1 of 5 keys" in str(caught.value) and keys[2] in str(caught.value)
    assert private_bucket.keys() == {keys[2]}
    private_bucket.repair()
    assert store.purge(recordings(policy), TenantSelection("12")).deleted == 1
    assert private_bucket.keys() == set()


def test_server_stopping_half_way_raises_and_a_rerun_finishes(
    policy: Policy, private_swift: Any, private_bucket: CosBucket, private_conn: str
) -> None:
    """The server stops once the first batch is answered. Batches in flight (four by default) may
    or may not have reached it, and may have been applied unanswered, so the assertions hold
    whatever the order: the purge raises, its count is exactly what the server acknowledged,
    and a rerun deletes exactly what is left."""
    keys = {rec_key("12", DAYS[i % 3], i) for i in range(60)}
    neighbours = {rec_key("123", DAYS[0], i) for i in range(3)}
    private_bucket.put(keys | neighbours)
    store = CosStore(timezone=TZ, aws_conn_id=private_conn, bucket=private_bucket.name, batch_size=10)
    assert store.deletes_in_flight == 4  # the default
    answered: list[int] = []

    def stop_after_first_batch(http_response: Any, **_: Any) -> None:
        if http_response.status_code == 200:
            answered.append(1)
        if len(answered) == 1:
            private_swift.stop_server("proxy")

    store.client.meta.events.register("after-call.s3.DeleteObjects", stop_after_first_batch)
    with pytest.raises(PartialPurgeError) as caught:
        store.purge(recordings(policy), TenantSelection("12"))

    private_swift.restart_server("proxy")
    left = private_bucket.keys()
    assert neighbours <= left and left & keys, "batches after the stop were not sent"
    assert caught.value.deleted == 10 * len(answered) <= len(keys - left), "the count is what was acknowledged"
    rerun = store.purge(recordings(policy), TenantSelection("12"))
    assert (rerun.deleted, store.verify(recordings(policy), TenantSelection("12"))) == (len(left & keys), 0)
    assert private_bucket.keys() == neighbours


# --------------------------------------------------------------------------- versioned bucket


@pytest.mark.parametrize(
    "server",
    [pytest.param("swift-s3api", id="on-swift"), pytest.param("moto (fallback: Swift unavailable)", id="on-moto")],
)
def test_versioned_bucket_loses_every_version_and_marker(
    policy: Policy, versioned_bucket: CosBucket, s3_kind: str, server: str
) -> None:
    """On Swift (object_versioning + s3api); only where Swift is unavailable, on moto."""
    if s3_kind != server:
        pytest.skip(f"the S3 server here is {s3_kind}")
    bucket = versioned_bucket
    target = recordings(policy)
    mine = [rec_key("12", DAYS[0], i) for i in range(3)]
    theirs = [rec_key("123", DAYS[0], i) for i in range(2)]
    for body in (b"v1", b"v2"):
        bucket.put(mine + theirs, body)
    bucket.client.delete_object(Bucket=bucket.name, Key=mine[0])  # a delete marker on top
    before = bucket.versions()
    their_versions = {v for v in before if v[0] in theirs}
    assert len(before) == 11 and len(their_versions) == 4

    store = store_for(bucket, page_size=3)  # deletes while paging through versions
    assert store.dated_units(target)[0].name == "recordings/12/2026/05/30/"
    assert store.count(target, TenantSelection("12")) == 7  # 6 versions and 1 delete marker
    result = store.purge(target, TenantSelection("12"))

    assert (result.deleted, result.method, result.details["versioned"]) == (7, "list-versions+delete-objects", True)
    assert bucket.versions() == their_versions
    assert store.purge(target, TenantSelection("12")).deleted == 0


# --------------------------------------------------------------------------- subjects in the key


def test_subject_selection_where_the_key_carries_the_subject(policy: Policy, cos_bucket: CosBucket) -> None:
    fields = MappingProxyType({"tenant": policy.tenant_format, **policy.subject_formats})
    template = Template("exports/{tenant}/{agent}/{date}/", fields, "%Y-%m-%d")
    target = CosTarget(category="agent_info", name="agent_exports", store="cos", description="",
                       retention=Retention(until_termination=True), prefix=template)
    keys = {f"exports/12/{a}/2026-05-31/x.csv" for a in ("a1", "a10", "b.x-2")} | {"exports/123/a1/2026-05-31/x.csv"}
    cos_bucket.put(keys)
    store = store_for(cos_bucket)
    result = store.purge(target, SubjectSelection("12", "agent", "a1", "hash"))
    assert result.deleted == 1
    assert cos_bucket.keys() == keys - {"exports/12/a1/2026-05-31/x.csv"}


def test_default_bucket_comes_from_the_connection(cos_endpoint: Any) -> None:
    assert CosStore(timezone=TZ).bucket == "cc-test"


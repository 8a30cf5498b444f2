"""The Elasticsearch store against a real server over HTTP, with the official client.

The server is the wire-compatible stand-in (devservers/es_standin_server.py) unless
ELASTICSEARCH_URL names a real cluster; tests that need the stand-in's fault injection or
request log are skipped against a real cluster.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, Iterator
from urllib.parse import quote

import pytest

from include.retention.identifiers import IdentifierError
from include.retention.policy import ElasticsearchTarget, Policy
from include.retention.selections import ExpiredSelection, SubjectSelection, TenantSelection
from include.retention.results import PartialPurgeError, UnsupportedSelection
from include.retention.stores.elasticsearch import ElasticsearchStore
from include.retention.stores.elasticsearch_client import ElasticsearchUnavailable, chunk_names
from tests.fixtures.elasticsearch import LogIndices, StandIn, months_back

pytestmark = [pytest.mark.servers, pytest.mark.timeout(60)]

YEAR = months_back(date(2025, 12, 1), 12)  # 2025-01 .. 2025-12
AGENT_X, AGENT_Y = "agent-x.one", "agent-y"
PHONE_X = "+6591230001"
DOCS = [
    {"agent_id": AGENT_X, "phone_number": PHONE_X},
    {"agent_id": AGENT_X, "phone_number": "+6591230002"},
    {"agent_id": AGENT_Y, "phone_number": PHONE_X},
    {"agent_id": AGENT_Y, "phone_number": "+6591230003"},
    {"agent_id": "agent-z", "phone_number": "+6591230004"},
]
_families = itertools.count(10)


@pytest.fixture
def tenants(tenant_base: str) -> dict[str, str]:
    """A tenant and its two name-neighbours: a prefix of it ('12' vs '1') and an extension ('123')."""
    family = f"{tenant_base}{next(_families)}"
    return {"short": family, "tenant": family + "2", "long": family + "23"}


def _subject(tenant: str, subject_type: str = "agent", subject_id: str = AGENT_X) -> SubjectSelection:
    return SubjectSelection(tenant=tenant, subject_type=subject_type, subject_id=subject_id, subject_hash="h" * 64)


def _deletes(requests: list[dict[str, Any]]) -> list[str]:
    return [r["path"] for r in requests if r["method"] == "DELETE" and not r["path"].startswith("/.tasks/")]


# ------------------------------------------------------------------ the server and the client


def test_client_product_check_passes(es_store: ElasticsearchStore) -> None:
    info = es_store.client.info()
    assert info["version"]["number"].startswith("8.")
    assert info.meta.headers["x-elastic-product"] == "Elasticsearch"


def test_compatible_with_9_is_refused(
    standin: StandIn,
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    tenants: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status, headers, body = standin.raw("GET", "/", {"Accept": "application/vnd.elasticsearch+json; compatible-with=9"})
    assert status == 400
    assert body["error"]["type"] == "media_type_header_exception"
    assert headers["X-Elastic-Product"] == "Elasticsearch"
    assert standin.raw("GET", "/", {"Accept": "application/vnd.elasticsearch+json; compatible-with=8"})[0] == 200
    assert standin.raw("GET", "/", {"Accept": "application/vnd.elasticsearch+json; compatible-with=7"})[0] == 200

    # The same refusal through the provider hook, told to negotiate like a 9.x client.
    from elasticsearch import BadRequestError

    monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH", "9")
    store = ElasticsearchStore(timezone=es_store.timezone)
    with pytest.raises(BadRequestError, match="media_type_header_exception"):
        store.count(es_target, TenantSelection(tenants["tenant"]))


def test_credentials_reach_every_request(
    es_target: ElasticsearchTarget, policy: Policy, tenants: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a stand-in that requires basic auth, as a secured cluster does (in-process, port 0)."""
    import json
    import threading
    import urllib.request
    from http.server import ThreadingHTTPServer
    from urllib.parse import quote

    from elasticsearch import AuthenticationException, Elasticsearch, NotFoundError

    from devservers import es_standin_server as srv

    user, password = "retention", "s3cr:et@x"
    handler = type("AuthHandler", (srv.Handler,), {"basic_auth": f"{user}:{password}"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_RETENTION_ES_AUTH",
            f"elasticsearch://{user}:{quote(password, safe='')}@127.0.0.1:{httpd.server_address[1]}/http",
        )
        client = Elasticsearch(base, basic_auth=(user, password))
        with pytest.raises(AuthenticationException):
            Elasticsearch(base).info()
        helper = LogIndices(client, es_target, policy.timezone)
        helper.create(tenants["tenant"], YEAR[:2], docs=DOCS)
        seq = json.loads(urllib.request.urlopen(base + "/_standin/requests?since=999999999999").read())["last"]

        store = ElasticsearchStore(elasticsearch_conn_id="retention_es_auth", timezone=policy.timezone)
        result = store.purge(es_target, _subject(tenants["tenant"]))
        assert result.deleted == 4
        assert store.purge(es_target, TenantSelection(tenants["tenant"])).deleted == 6

        log = json.loads(urllib.request.urlopen(f"{base}/_standin/requests?since={seq}").read())["requests"]
        assert [r for r in log if r["status"] == 401] == []
        assert any(r["method"] == "DELETE" and r["path"].startswith("/.tasks/") and r["status"] == 200 for r in log)
        with pytest.raises(NotFoundError):
            client.perform_request("GET", f"/_tasks/{quote(result.details['tasks'][0], safe='')}")  # type: ignore[index]
        client.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_standin_refuses_wildcard_deletes(es_client: Any, log_indices: LogIndices, tenants: dict[str, str]) -> None:
    from elasticsearch import BadRequestError

    (name,) = log_indices.create(tenants["tenant"], YEAR[:1])
    prefix = name.rsplit("-", 1)[0]
    for expression in (prefix + "-*", "_all", "*", f"{name},{prefix}-*"):
        with pytest.raises(BadRequestError) as err:
            es_client.indices.delete(index=expression)
        assert "Wildcard expressions or all indices are not allowed" in str(err.value.body)
    assert log_indices.exists(name)


# ------------------------------------------------------------------ termination


def test_tenant_drop_deletes_exactly_that_tenants_indices(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
) -> None:
    mine = log_indices.create(tenants["tenant"], YEAR[:3], docs=DOCS)
    short = log_indices.create(tenants["short"], YEAR[:3], docs=DOCS)
    long = log_indices.create(tenants["long"], YEAR[:3], docs=DOCS)
    selection = TenantSelection(tenants["tenant"])
    assert es_store.count(es_target, selection) == 3 * len(DOCS)

    seq = standin.last_seq()
    result = es_store.purge(es_target, selection)

    assert (result.planned, result.deleted, result.method) == (15, 15, "delete_index")
    assert result.details["indices"] == 3
    assert sorted(result.details["index_names"]) == sorted(mine)  # type: ignore[arg-type]
    assert not any(log_indices.exists(n) for n in mine)
    assert all(log_indices.exists(n) for n in short + long)
    assert es_store.verify(es_target, selection) == 0
    assert es_store.count(es_target, TenantSelection(tenants["short"])) == 15
    assert es_store.count(es_target, TenantSelection(tenants["long"])) == 15

    # Deletes named every index explicitly; no wildcard ever reached a delete.
    deletes = _deletes(standin.requests_since(seq))
    assert deletes, "the purge sent no delete"
    for path in deletes:
        assert "*" not in path and "_all" not in path
    assert sorted(n for p in deletes for n in p.split("?")[0].strip("/").split(",")) == sorted(mine)


def test_tenant_rerun_deletes_zero(
    es_store: ElasticsearchStore, es_target: ElasticsearchTarget, log_indices: LogIndices, tenants: dict[str, str]
) -> None:
    log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS)
    first = es_store.purge(es_target, TenantSelection(tenants["tenant"]))
    second = es_store.purge(es_target, TenantSelection(tenants["tenant"]))
    assert first.deleted == 10
    assert (second.planned, second.deleted, second.batches) == (0, 0, 0)


def test_tenant_dry_run_counts_and_deletes_nothing(
    es_store: ElasticsearchStore, es_target: ElasticsearchTarget, log_indices: LogIndices, tenants: dict[str, str]
) -> None:
    names = log_indices.create(tenants["tenant"], YEAR[:4], docs=DOCS)
    result = es_store.purge(es_target, TenantSelection(tenants["tenant"]), dry_run=True)
    assert (result.planned, result.deleted, result.dry_run) == (20, 0, True)
    assert all(log_indices.exists(n) for n in names)
    assert es_store.verify(es_target, TenantSelection(tenants["tenant"])) == 20


def test_unrecognised_names_under_the_prefix_are_left_alone(
    es_store: ElasticsearchStore, es_target: ElasticsearchTarget, log_indices: LogIndices, tenants: dict[str, str]
) -> None:
    (real,) = log_indices.create(tenants["tenant"], YEAR[:1], docs=DOCS)
    (odd,) = log_indices.create(tenants["tenant"], YEAR[:1], docs=DOCS, name=real + "-restored")
    result = es_store.purge(es_target, TenantSelection(tenants["tenant"]))
    assert result.deleted == 5
    assert result.details["unrecognised_indices"] == [odd]
    assert not log_indices.exists(real) and log_indices.exists(odd)


def test_closed_index_is_dropped_and_never_looks_empty(
    es_store: ElasticsearchStore,
    es_client: Any,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
) -> None:
    first, second = log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS)
    es_client.indices.close(index=first)
    selection = TenantSelection(tenants["tenant"])
    assert es_store.count(es_target, selection) == 5  # the closed index's documents cannot be counted
    assert es_store.verify(es_target, selection) == 6  # ... so it counts as one, never as empty
    result = es_store.purge(es_target, selection)
    assert result.details["closed_indices"] == 1
    assert not log_indices.exists(first) and not log_indices.exists(second)
    assert es_store.verify(es_target, selection) == 0


# ------------------------------------------------------------------ expiry


def test_dated_units_are_months_on_the_policy_calendar(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
) -> None:
    names = log_indices.create(tenants["tenant"], [date(2025, 1, 1), date(2025, 12, 1)])
    log_indices.create(tenants["tenant"], YEAR[:1], name=names[0] + "-restored")
    units = {u.name: u for u in es_store.dated_units(es_target) if u.tenant == tenants["tenant"]}
    assert sorted(units) == sorted(names)
    tz = policy.timezone
    jan, dec = units[names[0]], units[names[1]]
    assert (jan.start, jan.end) == (datetime(2025, 1, 1, tzinfo=tz), datetime(2025, 2, 1, tzinfo=tz))
    assert (dec.start, dec.end) == (datetime(2025, 12, 1, tzinfo=tz), datetime(2026, 1, 1, tzinfo=tz))
    assert jan.start.utcoffset() == timedelta(hours=8)


def test_expired_units_delete_exactly_those_indices(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
) -> None:
    names = log_indices.create(tenants["tenant"], YEAR, docs=DOCS[:2])
    neighbour = log_indices.create(tenants["long"], YEAR[:3], docs=DOCS[:2])
    cutoff = datetime(2025, 7, 1, tzinfo=policy.timezone)
    units = tuple(names[:6])  # January .. June lie wholly before July
    selection = ExpiredSelection(before=cutoff, tenant=tenants["tenant"], units=units)

    dry = es_store.purge(es_target, selection, dry_run=True)
    assert (dry.planned, dry.deleted) == (12, 0)
    result = es_store.purge(es_target, selection)
    assert (result.planned, result.deleted) == (12, 12)
    assert [log_indices.exists(n) for n in names] == [False] * 6 + [True] * 6
    assert all(log_indices.exists(n) for n in neighbour)
    assert es_store.verify(es_target, selection) == 0
    assert es_store.purge(es_target, selection).deleted == 0


@pytest.mark.parametrize(
    "unit, message",
    [
        pytest.param("july", "not wholly before", id="not-expired"),
        pytest.param("other-tenant", "excludes", id="other-tenant"),
        pytest.param("cc-logs-12-2025.1", "is not an index", id="malformed"),
        pytest.param("cc-logs-*", "is not an index", id="wildcard"),
    ],
)
def test_expired_units_are_validated_before_anything_goes(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
    unit: str,
    message: str,
) -> None:
    names = log_indices.create(tenants["tenant"], YEAR[:7])
    other = log_indices.name(tenants["long"], YEAR[0])
    given = {"july": names[6], "other-tenant": other}.get(unit, unit)
    selection = ExpiredSelection(
        before=datetime(2025, 7, 1, tzinfo=policy.timezone), tenant=tenants["tenant"], units=(names[0], given)
    )
    with pytest.raises(ValueError, match=message):
        es_store.purge(es_target, selection)
    assert all(log_indices.exists(n) for n in names)


def test_expired_without_units_takes_whole_months_and_spares_excluded_tenants(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
) -> None:
    mine = log_indices.create(tenants["tenant"], YEAR[:4], docs=DOCS[:1])
    held = log_indices.create(tenants["long"], YEAR[:4], docs=DOCS[:1])
    cutoff = datetime(2025, 3, 15, tzinfo=policy.timezone)  # March straddles the cut-off: it stays
    for tenant, expect in ((tenants["tenant"], [False, False, True, True]), (tenants["long"], [True] * 4)):
        selection = ExpiredSelection(before=cutoff, tenant=tenant, exclude_tenants=frozenset({tenants["long"]}))
        es_store.purge(es_target, selection)
        assert [log_indices.exists(n) for n in (mine if tenant == tenants["tenant"] else held)] == expect


def test_expired_index_created_after_the_cutoff_is_refused(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
) -> None:
    cutoff = datetime(2025, 7, 1, tzinfo=policy.timezone)
    old = log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS[:1])
    (suspect,) = log_indices.create(tenants["tenant"], YEAR[2:3], docs=DOCS[:1], created_at=cutoff + timedelta(days=3))
    selection = ExpiredSelection(before=cutoff, tenant=tenants["tenant"], units=tuple(old) + (suspect,))
    result = es_store.purge(es_target, selection)
    assert result.details["refused_indices"] == [suspect]
    assert (result.planned, result.deleted) == (3, 2)
    assert log_indices.exists(suspect) and not any(log_indices.exists(n) for n in old)
    assert es_store.verify(es_target, selection) == 1  # the refused index still counts


def test_held_subjects_in_text_fields_stop_the_purge(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
) -> None:
    # With agent_id analyzed, must_not would not spare the held agent: nothing may go.
    names = log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS, mappings={})
    selection = ExpiredSelection(
        before=datetime(2025, 3, 1, tzinfo=policy.timezone),
        tenant=tenants["tenant"],
        exclude_subjects=frozenset({(tenants["tenant"], "agent", AGENT_Y)}),
    )
    with pytest.raises(UnsupportedSelection, match="mapped as text"):
        es_store.purge(es_target, selection)
    assert [log_indices.count(n) for n in names] == [5, 5]


def test_index_created_before_its_month_is_reported_once(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    early = datetime(2025, 1, 1, tzinfo=policy.timezone) - timedelta(days=40)
    (name,) = log_indices.create(tenants["tenant"], YEAR[:1], docs=DOCS[:1], created_at=early)
    with caplog.at_level("WARNING", logger="include.retention.stores.elasticsearch"):
        assert es_store.purge(es_target, TenantSelection(tenants["tenant"])).deleted == 1
    warnings = [r.getMessage() for r in caplog.records if "before its period began" in r.getMessage()]
    assert len(warnings) == 1 and name in warnings[0]


def test_expired_indices_of_a_held_subject_are_thinned_not_dropped(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    policy: Policy,
) -> None:
    names = log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS)
    cutoff = datetime(2025, 3, 1, tzinfo=policy.timezone)
    selection = ExpiredSelection(
        before=cutoff, tenant=tenants["tenant"], exclude_subjects=frozenset({(tenants["tenant"], "agent", AGENT_Y)})
    )
    assert es_store.count(es_target, selection) == 6  # 3 of 5 documents per index are not the held agent's
    result = es_store.purge(es_target, selection)
    assert (result.planned, result.deleted, result.method) == (6, 6, "delete_index+delete_by_query")
    for name in names:
        assert log_indices.exists(name)
        assert log_indices.count(name) == 2
        assert log_indices.count(name, {"term": {"agent_id": AGENT_Y}}) == 2
    assert es_store.verify(es_target, selection) == 0


# ------------------------------------------------------------------ subjects


@pytest.mark.parametrize(
    "subject_type, subject_id, per_index",
    [pytest.param("agent", AGENT_X, 2, id="agent"), pytest.param("phone_number", PHONE_X, 2, id="phone")],
)
def test_subject_delete_removes_only_that_subject_in_that_tenant(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
    subject_type: str,
    subject_id: str,
    per_index: int,
) -> None:
    mine = log_indices.create(tenants["tenant"], YEAR[:3], docs=DOCS)
    neighbours = log_indices.create(tenants["long"], YEAR[:3], docs=DOCS)
    selection = _subject(tenants["tenant"], subject_type, subject_id)
    field = es_target.subject_fields[subject_type]

    dry = es_store.purge(es_target, selection, dry_run=True)
    assert (dry.planned, dry.deleted) == (3 * per_index, 0)
    assert sum(log_indices.count(n) for n in mine) == 15

    seq = standin.last_seq()
    result = es_store.purge(es_target, selection)
    assert (result.planned, result.deleted, result.method) == (6, 6, "delete_by_query")
    for name in mine:
        assert log_indices.count(name) == 5 - per_index
        assert log_indices.count(name, {"term": {field: subject_id}}) == 0
    for name in neighbours:
        assert log_indices.count(name, {"term": {field: subject_id}}) == per_index  # same id, other tenant
    assert es_store.verify(es_target, selection) == 0
    assert es_store.purge(es_target, selection).deleted == 0

    # The subject id went only into request bodies: never into a URL.
    for request in standin.requests_since(seq):
        assert subject_id not in request["path"] and subject_id.lstrip("+") not in request["path"]
    # The task's stored result was cleaned up after reading.
    (task,) = result.details["tasks"]  # type: ignore[misc]
    from elasticsearch import NotFoundError
    from elasticsearch.exceptions import GeneralAvailabilityWarning

    with pytest.raises(NotFoundError), pytest.warns(GeneralAvailabilityWarning):
        es_store.client.tasks.get(task_id=task)


def test_subject_delete_keeps_documents_naming_another_held_subject(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
) -> None:
    # Phone X's deletion request meets agent Y's legal hold: the document naming both stays.
    names = log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS)
    held = frozenset({(tenants["tenant"], "agent", AGENT_Y), (tenants["long"], "agent", AGENT_X)})
    selection = replace(_subject(tenants["tenant"], "phone_number", PHONE_X), exclude_subjects=held)
    assert es_store.count(es_target, selection.without_holds()) == 4
    assert es_store.count(es_target, selection) == 2  # the other tenant's hold does not reach this tenant

    result = es_store.purge(es_target, selection)

    assert (result.planned, result.deleted) == (2, 2)
    for name in names:
        assert log_indices.count(name) == 4
        assert log_indices.count(name, {"term": {"phone_number": PHONE_X}}) == 1  # the held agent's document
        assert log_indices.count(name, {"term": {"agent_id": AGENT_X}}) == 1
    assert es_store.verify(es_target, selection) == 0
    assert es_store.count(es_target, selection.without_holds()) == 2  # withheld, not "still there"


def test_subject_purge_refuses_analyzed_fields(
    es_store: ElasticsearchStore, es_target: ElasticsearchTarget, log_indices: LogIndices, tenants: dict[str, str]
) -> None:
    # Dynamic mapping makes agent_id a text field: a term query would miss 'agent-x.one'.
    names = log_indices.create(tenants["tenant"], YEAR[:1], docs=DOCS, mappings={})
    with pytest.raises(UnsupportedSelection, match="mapped as text"):
        es_store.purge(es_target, _subject(tenants["tenant"]))
    assert log_indices.count(names[0]) == 5


def test_subject_ids_are_validated(
    es_store: ElasticsearchStore, es_target: ElasticsearchTarget, tenants: dict[str, str]
) -> None:
    with pytest.raises(IdentifierError) as err:
        es_store.purge(es_target, _subject(tenants["tenant"], "agent", "agent-*"))
    assert "agent-*" not in str(err.value)  # personal data is never echoed
    with pytest.raises(UnsupportedSelection):
        es_store.purge(es_target, _subject(tenants["tenant"], "customer", "x"))


def test_subject_with_no_indices_counts_zero(
    es_store: ElasticsearchStore, es_target: ElasticsearchTarget, tenants: dict[str, str]
) -> None:
    result = es_store.purge(es_target, _subject(tenants["tenant"]))
    assert (result.planned, result.deleted) == (0, 0)


# ------------------------------------------------------------------ faults


def test_429_and_503_are_retried_then_succeed(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
) -> None:
    names = log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS)
    seq = standin.last_seq()
    standin.fault(429, 2, paths="/_cat/indices/" + names[0].rsplit("-", 1)[0])
    standin.fault(503, 1, paths="/" + names[0], methods=["DELETE"])
    result = es_store.purge(es_target, TenantSelection(tenants["tenant"]))
    assert result.deleted == 10
    statuses = [r["status"] for r in standin.requests_since(seq)]
    assert statuses.count(429) == 2 and statuses.count(503) == 1
    assert not any(log_indices.exists(n) for n in names)


def test_persistent_503_fails_clearly_and_deletes_nothing(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
) -> None:
    names = log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS)
    standin.fault(503, 1000, paths="/" + names[0], methods=["DELETE"])
    with pytest.raises(PartialPurgeError) as err:
        es_store.purge(es_target, TenantSelection(tenants["tenant"]))
    assert err.value.deleted == 0
    assert isinstance(err.value.cause, ElasticsearchUnavailable)
    assert "after 6 attempts" in str(err.value.cause)
    assert all(log_indices.exists(n) for n in names)
    standin.clear_faults()
    assert es_store.purge(es_target, TenantSelection(tenants["tenant"])).deleted == 10


def test_persistent_429_on_count_raises(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
) -> None:
    names = log_indices.create(tenants["tenant"], YEAR[:1], docs=DOCS)
    standin.fault(429, 1000, paths="/_cat/indices/" + names[0].rsplit("-", 1)[0])
    with pytest.raises(ElasticsearchUnavailable, match="HTTP 429"):
        es_store.count(es_target, TenantSelection(tenants["tenant"]))


def test_delete_by_query_failures_raise_partial_purge(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
) -> None:
    log_indices.create(tenants["tenant"], YEAR[:2], docs=DOCS)
    standin.fault(429, 1, stage="delete_by_query")
    with pytest.raises(PartialPurgeError, match="es_rejected_execution_exception"):
        es_store.purge(es_target, _subject(tenants["tenant"]))
    # A rerun finishes the job.
    es_store.purge(es_target, _subject(tenants["tenant"]))
    assert es_store.verify(es_target, _subject(tenants["tenant"])) == 0


def test_slow_task_times_out_with_a_clear_error(
    es_store: ElasticsearchStore,
    es_target: ElasticsearchTarget,
    log_indices: LogIndices,
    tenants: dict[str, str],
    standin: StandIn,
    policy: Policy,
) -> None:
    log_indices.create(tenants["tenant"], YEAR[:1], docs=DOCS)
    store = ElasticsearchStore(timezone=policy.timezone, task_timeout_seconds=0.2)
    standin.fault(0, 1, stage="delete_by_query", delay=1.0)
    with pytest.raises(PartialPurgeError, match="did not finish within") as err:
        store.purge(es_target, _subject(tenants["tenant"]))
    task_id = str(err.value.cause).split("task ", 1)[1].split(" ", 1)[0]
    assert task_id in str(err.value)  # the operator can follow it: GET _tasks/{id}
    # The task carries on in the cluster and finishes the job.
    done = es_store.client.perform_request(
        "GET", f"/_tasks/{quote(task_id, safe='')}", params={"wait_for_completion": "true", "timeout": "5s"}
    )
    assert done["completed"] and done["response"]["deleted"] == 2
    assert es_store.verify(es_target, _subject(tenants["tenant"])) == 0
    es_store._forget_task(task_id)  # the store gave up on it, so its stored result is ours to remove


# ------------------------------------------------------------------ pure helpers


def test_chunks_keep_every_request_short() -> None:
    names = [f"cc-logs-{9_000_000_000 + i}-2025.{m:02d}" for i in range(400) for m in range(1, 13)]
    chunks = list(chunk_names(names, 3_000, 10_000))
    assert [n for c in chunks for n in c] == names
    assert all(len(",".join(c)) <= 3_000 for c in chunks)
    assert len(chunks) <= len(",".join(names)) // 2_900 + 1  # full chunks: few requests
    assert list(chunk_names(["a", "b", "c"], 3_000, 2)) == [["a", "b"], ["c"]]


@pytest.fixture(autouse=True)
def _no_personal_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    for record in caplog.records:
        text = record.getMessage()
        assert AGENT_X not in text and PHONE_X not in text


def test_client_is_built_from_the_airflow_connection(monkeypatch: pytest.MonkeyPatch, policy: Policy) -> None:
    """URL and credentials come from the connection (the path is the scheme); building connects to nothing."""
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_ES_TLS", "elasticsearch://ops:p%40ss@es.example.internal:9243/https")
    store = ElasticsearchStore(elasticsearch_conn_id="retention_es_tls", timezone=policy.timezone)
    client = store.client
    node = client.transport.node_pool.get()
    assert node.base_url == "https://es.example.internal:9243"
    assert store._auth_headers == {"authorization": "Basic b3BzOnBAc3M="}  # ops:p@ss
    assert (client._max_retries, client._retry_on_status) == (0, ())  # retries are the store's, with back-off
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_ES_FTP", "elasticsearch://es.example.internal:9243/ftp")
    with pytest.raises(ValueError, match="must be http or https"):
        _ = ElasticsearchStore(elasticsearch_conn_id="retention_es_ftp", timezone=policy.timezone).client

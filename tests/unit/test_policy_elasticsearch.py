"""The policy's three Elasticsearch layouts: what loads, what is refused (with the fix), and the
exact queries a shared layout's selections become. Pure: no server."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from include.retention.expiry import plan_expired
from include.retention.facts import TenantOverride
from include.retention.policy import ElasticsearchTarget, PolicyError, parse_policy
from include.retention.policy_elasticsearch import SharedIndexName
from include.retention.selections import DatedUnit, ExpiredSelection, SubjectSelection, TenantSelection
from include.retention.stores.elasticsearch_shared import SharedIndex, droppable, selection_query
from tests.fixtures.elasticsearch_layouts import layout_doc, layout_policy

SGT = ZoneInfo("Asia/Singapore")


def _target(kind: str, **retention: Any) -> ElasticsearchTarget:
    target = layout_policy(kind, "t1", retention or None).target("log_data.cc_logs")
    assert isinstance(target, ElasticsearchTarget)
    return target


def test_the_packaged_layout_is_per_tenant() -> None:
    from include.retention.policy import load_policy

    target = load_policy().target("log_data.cc_logs")
    assert isinstance(target, ElasticsearchTarget)
    assert target.layout.kind == "per_tenant" and not target.layout.shared and target.index is not None


def test_shared_and_stream_layouts_load() -> None:
    shared, stream = _target("shared"), _target("data_stream")
    assert shared.layout.shared_index == SharedIndexName("cc-shared-t1-{month}", "%Y.%m")
    assert shared.index is None and shared.is_dated and shared.subject_types == ("agent", "phone_number")
    assert stream.layout.data_stream == "cc-stream-t1" and stream.is_dated
    assert shared.layout.where(None, "7712", "tenant_id") == "cc-shared-t1-{month} (documents with tenant_id = 7712)"


def _edit(kind: str, **changes: Any) -> dict[str, Any]:
    doc = layout_doc(kind, "t1")
    target = doc["categories"]["log_data"]["targets"][0]
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return doc


@pytest.mark.parametrize(
    "kind, changes, rule, words",
    [
        pytest.param("shared", {"tenant_field": None}, "tenant_field", "keeps tenants apart", id="shared-needs-tenant-field"),
        pytest.param("shared", {"index": "cc-logs-{tenant}-{month}"}, "index", "without {tenant}", id="shared-with-tenant"),
        pytest.param("shared", {"index": "cc-logs-*-{month}"}, "index", "lower-case", id="shared-wildcard"),
        pytest.param("shared", {"month_format": None}, "index", "%Y", id="shared-no-format"),
        pytest.param("data_stream", {"data_stream": "logs-*"}, "data_stream", "no wildcard", id="stream-wildcard"),
        pytest.param("data_stream", {"data_stream": ".ds-logs"}, "data_stream", "unusable", id="stream-backing-name"),
        pytest.param("data_stream", {"index": "x-{month}"}, "index", "names its backing indices", id="stream-index"),
        pytest.param("data_stream", {"time_field": "ts"}, "time_field", "@timestamp", id="stream-time-field"),
        pytest.param("shared", {"layout": "sharded"}, "layout", "per_tenant, shared, data_stream", id="unknown-layout"),
    ],
)
def test_layout_mistakes_are_refused_with_the_fix(kind: str, changes: dict[str, Any], rule: str, words: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(_edit(kind, **changes))
    assert err.value.rule.endswith(rule) and words in str(err.value)


def test_shared_index_names_parse_exactly() -> None:
    name = SharedIndexName("cc-logs-{month}", "%Y.%m")
    assert name.parse("cc-logs-2025.01") == date(2025, 1, 1) and name.render(date(2025, 1, 9)) == "cc-logs-2025.01"
    assert name.parse("cc-logs-2025.13") is None and name.parse("cc-logs-2025.01-restored") is None
    assert name.parse("cc-logs-7712-2025.01") is None  # a per-tenant index is never a shared one
    assert name.bounds(date(2025, 12, 1), SGT) == (datetime(2025, 12, 1, tzinfo=SGT), datetime(2026, 1, 1, tzinfo=SGT))


def test_queries_are_exact_terms_and_keep_out_what_is_withheld() -> None:
    target = _target("shared")
    assert selection_query(target, TenantSelection("7712")) == {"bool": {"filter": [{"term": {"tenant_id": "7712"}}]}}
    sub = selection_query(target, SubjectSelection("7712", "agent", "al", "h", frozenset({("7712", "agent", "bob")})))
    assert sub["bool"]["filter"] == [{"term": {"tenant_id": "7712"}}, {"term": {"agent_id": "al"}}]
    assert sub["bool"]["must_not"] == [{"bool": {"filter": [{"term": {"tenant_id": "7712"}}, {"term": {"agent_id": "bob"}}]}}]
    cut = datetime(2025, 3, 1, tzinfo=SGT)
    exp = selection_query(target, ExpiredSelection(before=cut, exclude_tenants=frozenset({"7714", "7713"}),
                                                   exclude_subjects=frozenset({("7712", "phone_number", "+6591234567")})))
    assert exp["bool"]["filter"] == [{"range": {"@timestamp": {"lt": "2025-03-01T00:00:00+08:00"}}}]
    assert exp["bool"]["must_not"][0] == {"terms": {"tenant_id": ["7713", "7714"]}}
    assert len(exp["bool"]["must_not"]) == 2


def test_a_shared_index_goes_whole_only_when_every_document_in_it_expired() -> None:
    cut = datetime(2025, 3, 1, tzinfo=SGT)
    jan = SharedIndex("cc-logs-2025.01", 10, datetime(2025, 1, 1, tzinfo=SGT), datetime(2025, 2, 1, tzinfo=SGT))
    feb = SharedIndex("cc-logs-2025.02", 10, datetime(2025, 2, 1, tzinfo=SGT), cut)
    mar = SharedIndex("cc-logs-2025.03", 10, cut, datetime(2025, 4, 1, tzinfo=SGT))
    every = ExpiredSelection(before=cut)
    assert droppable(jan, every, 10) and droppable(feb, every, 10) and not droppable(mar, every, 10)
    assert not droppable(jan, every, 9)  # one document of a kept tenant or subject: thinned instead
    assert not droppable(jan, ExpiredSelection(before=cut, tenant="7713"), 10)  # one tenant never takes a shared index


def test_the_planner_treats_shared_indices_as_shared_units() -> None:
    """One selection for every tenant but the extended, one for each extended tenant (as MySQL)."""
    target = _target("shared", months=6, extendable=True)
    units = [DatedUnit("cc-shared-t1-2025.01", datetime(2025, 1, 1, tzinfo=SGT), datetime(2025, 2, 1, tzinfo=SGT))]
    override = TenantOverride(tenant_id="7713", category="log_data", retention_months=12)
    plan = plan_expired(target, datetime(2025, 9, 1, tzinfo=SGT), SGT, units, [override])
    shared, own = (p.selection for p in plan.purges)
    assert isinstance(shared, ExpiredSelection) and shared.tenant is None and shared.exclude_tenants == {"7713"}
    assert shared.units == ("cc-shared-t1-2025.01",)
    assert isinstance(own, ExpiredSelection) and own.tenant == "7713" and own.before < shared.before

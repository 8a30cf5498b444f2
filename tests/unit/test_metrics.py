"""The package's metrics, received on a real UDP StatsD listener through Airflow's own StatsD client.

Airflow's metrics layer is set up here as a task runner sets it up (``stats.initialize`` with
the factory ``[metrics]`` chooses), pointed at a socket this test binds on 127.0.0.1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from include.retention import metrics
from include.retention.policy import Policy
from include.retention.results import PurgeResult
from tests.fixtures.statsd import Sample, StatsdListener, airflow_stats_to

DOCS = Path(__file__).resolve().parents[2] / "docs" / "METRICS.md"
TENANT = "7712"
PHONE = "+6581230001"
AGENT = "agent.a10"
REQUEST_ID = "req-4f2a9c"
PREFIX = "airflow."


@pytest.fixture
def listener() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    try:
        with airflow_stats_to(listener):
            yield listener
    finally:
        listener.close()


def result_about_a_subject(policy: Policy, qualified_name: str, deleted: int, seconds: float = 0.25,
                           dry_run: bool = False) -> PurgeResult:
    """A purge result whose details name a tenant and a subject, as a store's may."""
    target = policy.target(qualified_name)
    return PurgeResult(target=qualified_name, store=target.store, method="delete_batches", planned=deleted,
                       deleted=deleted, dry_run=dry_run, seconds=seconds,
                       details={"tenant_id": TENANT, "subject": PHONE, "agent": AGENT, "request": REQUEST_ID})


def named(samples: list[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.name == PREFIX + name]


def test_a_purge_sends_records_deleted_and_its_duration_tagged_and_flat(policy: Policy,
                                                                        listener: StatsdListener) -> None:
    target = policy.target("call_data.call_records")
    metrics.purge_finished(metrics.DAILY, target, result_about_a_subject(policy, "call_data.call_records", 42),
                           dry_run=False)

    flat = PREFIX + "retention.purge.records_deleted.daily.mysql.call_data.call_records"
    samples = listener.wait_for(lambda got: any(s.name == flat for s in got) and len(got) >= 4)
    tags = {"path": "daily", "store": "mysql", "category": "call_data", "target": "call_records"}
    (deleted,) = named(samples, "retention.purge.records_deleted")
    assert (deleted.tags, deleted.value, deleted.kind) == (tags, 42, "c")
    (timing,) = named(samples, "retention.purge.duration")
    assert (timing.tags, timing.value, timing.kind) == (tags, 250, "ms")
    assert [(s.value, s.kind) for s in samples if s.name == flat] == [(42, "c")]
    assert [(s.value, s.kind) for s in named(samples, "retention.purge.duration.daily.mysql.call_data.call_records")
            ] == [(250, "ms")]


def test_a_dry_run_counts_nothing_as_deleted(policy: Policy, listener: StatsdListener) -> None:
    target = policy.target("call_data.recordings")
    preview = result_about_a_subject(policy, "call_data.recordings", 9, dry_run=True)
    metrics.purge_finished(metrics.DAILY, target, preview, dry_run=True)
    metrics.purge_finished(metrics.DAILY, target, result_about_a_subject(policy, "call_data.recordings", 9),
                           dry_run=True)  # the run's flag alone is enough
    metrics.breaker_tripped("call_data")  # a marker: everything sent before it has arrived with it

    samples = listener.wait_for(lambda got: any("breaker" in s.name for s in got))
    assert [s for s in samples if ".purge." in s.name] == []


def test_breaker_trips_and_sla_metrics(listener: StatsdListener) -> None:
    metrics.breaker_tripped("call_analytics")
    metrics.sla_swept(3, -2)  # a negative gauge goes out as 0, then the value (StatsD reads "-2" as a decrement)
    metrics.sla_alert_sent("warning")
    metrics.sla_alert_sent("breach")
    metrics.sla_alert_sent("breach")

    samples = listener.wait_for(lambda got: len(named(got, "retention.sla.breaches")) == 2
                                and len(named(got, "retention.sla.min_days_left")) == 2)
    (trip,) = named(samples, "retention.breaker.trips")
    assert (trip.tags, trip.value, trip.kind) == ({"category": "call_analytics"}, 1, "c")
    assert [s.value for s in named(samples, "retention.breaker.trips.call_analytics")] == [1]
    assert [(s.value, s.kind) for s in named(samples, "retention.sla.open_requests")] == [(3, "g")]
    assert [s.value for s in named(samples, "retention.sla.min_days_left")] == [0, -2]
    assert [(s.value, s.kind) for s in named(samples, "retention.sla.warnings")] == [(1, "c")]
    assert all(s.tags == {} for s in samples if ".sla." in s.name)


def test_names_and_tags_carry_no_tenant_subject_or_request(policy: Policy, listener: StatsdListener) -> None:
    """Every helper, fed results that name a tenant and subjects: only policy vocabulary goes out."""
    for qualified in ("call_data.call_records", "call_data.recordings", "agent_info.agent_state",
                      "log_data.cc_logs", "call_analytics.call_analytics_backups"):
        target = policy.target(qualified)
        for path in (metrics.DAILY, metrics.REQUEST):
            metrics.purge_finished(path, target, result_about_a_subject(policy, qualified, 3), dry_run=False)
    metrics.breaker_tripped("call_data")
    metrics.sla_swept(1, 5)
    metrics.sla_alert_sent("breach")

    samples = listener.wait_for(lambda got: len(named(got, "retention.purge.records_deleted")) == 10
                                and named(got, "retention.sla.breaches") != [])
    packets = "\n".join(listener.received())
    for secret in (TENANT, PHONE, PHONE.lstrip("+"), AGENT, REQUEST_ID):
        assert secret not in packets
    vocabulary = ({"daily", "request"} | set(policy.categories) | {t.store for t in policy.targets}
                  | {t.name for t in policy.targets})
    for sample in samples:
        if sample.name.startswith(PREFIX + "retention."):
            assert set(sample.tags.values()) <= vocabulary, sample
            assert set(sample.name.removeprefix(PREFIX).split(".")) <= vocabulary | {
                "retention", "purge", "records_deleted", "duration", "breaker", "trips", "sla", "open_requests",
                "min_days_left", "breaches"}, sample


def test_without_flat_names_only_the_tagged_metric_goes_out(policy: Policy) -> None:
    listener = StatsdListener()
    try:
        with airflow_stats_to(listener, legacy_names=False):
            target = policy.target("call_data.call_records")
            metrics.purge_finished(metrics.REQUEST, target, result_about_a_subject(policy, "call_data.call_records", 2),
                                   dry_run=False)
            samples = listener.wait_for(lambda got: len(got) >= 2)
    finally:
        listener.close()
    assert sorted(s.name for s in samples) == [PREFIX + "retention.purge.duration",
                                               PREFIX + "retention.purge.records_deleted"]


def test_with_metrics_off_the_helpers_are_quiet_no_ops(policy: Policy) -> None:
    """Airflow's default (``statsd_on`` and ``otel_on`` false): nothing is sent, nothing raises."""
    target = policy.target("call_data.call_records")
    metrics.purge_finished(metrics.DAILY, target, result_about_a_subject(policy, "call_data.call_records", 1),
                           dry_run=False)
    metrics.breaker_tripped("call_data")
    metrics.sla_swept(0, 30)
    metrics.sla_alert_sent("warning")


def test_docs_list_every_metric_with_its_type_and_tags() -> None:
    text = DOCS.read_text()
    for metric in metrics.ALL:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{metric.name}` |")), None)
        assert row is not None, f"docs/METRICS.md has no row for {metric.name}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == metric.kind, row
        assert re.findall(r"`(\w+)`", cells[2]) == list(metric.tags), row

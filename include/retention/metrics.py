"""The package's metrics, sent through Airflow's own metrics layer to StatsD, Datadog or OpenTelemetry.

Airflow's ``[metrics]`` section decides where they go (``statsd_on``, ``statsd_host``,
``statsd_port``, ``statsd_prefix``; ``statsd_datadog_enabled``; ``otel_on``); with metrics off
every call is a no-op, as for Airflow's own metrics. ``docs/METRICS.md`` lists each metric.

Names and tags are low-cardinality by construction: a tag is a path (``daily``, ``request``),
a category, a store, a target name (all from the validated policy) or an alert kind. No
tenant id, subject, request id or reference is ever passed in.

Like Airflow's own metrics since 3.2, a tagged metric also goes out under a *flat* name with
its tag values in it (``retention.purge.records_deleted.daily.mysql.call_data.call_records``)
while ``[metrics] legacy_names_on`` is true (Airflow's default): plain StatsD drops tags, and
this keeps the per-target series there.

A dry run deletes nothing and emits no purge metric: a sum of deletions or of purge times
never mixes in previews, whichever backend (with or without tags) receives it.

Airflow is imported only when a metric is sent, and a metric that cannot be sent is logged,
never raised: the data is already deleted and audited by then.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from include.retention.policy import Target
    from include.retention.results import PurgeResult

log = logging.getLogger(__name__)

Kind = Literal["counter", "gauge", "timer"]
#: The two paths that purge (``path`` tag): the daily DAGs, and termination/deletion requests.
DAILY = "daily"
REQUEST = "request"
_PURGE_TAGS = ("path", "store", "category", "target")


@dataclass(frozen=True)
class Metric:
    """One metric: its name (without Airflow's ``statsd_prefix``), kind, tags in flat-name order."""

    name: str
    kind: Kind
    tags: tuple[str, ...]
    meaning: str

    def flat_name(self, tags: dict[str, str]) -> str:
        """The name with the tag values in it, for backends without tags (dots in values become ``__``)."""
        return ".".join((self.name, *(tags[t].replace(".", "__") for t in self.tags)))


RECORDS_DELETED = Metric("retention.purge.records_deleted", "counter", _PURGE_TAGS,
                         "records one real purge deleted (rows, keys, objects, documents)")
PURGE_DURATION = Metric("retention.purge.duration", "timer", _PURGE_TAGS,
                        "how long the store took for one real purge, in milliseconds")
BREAKER_TRIPS = Metric("retention.breaker.trips", "counter", ("category",),
                       "daily plans the circuit breaker refused (nothing was deleted)")
OPEN_REQUESTS = Metric("retention.sla.open_requests", "gauge", (),
                       "open termination and deletion requests at the SLA monitor's last sweep")
MIN_DAYS_LEFT = Metric("retention.sla.min_days_left", "gauge", (),
                       "the smallest days left of an open request (0 due today, negative overdue); "
                       "the full request window when none is open")
SLA_WARNINGS = Metric("retention.sla.warnings", "counter", (),
                      "SLA warnings sent (once per request, from 7 days before its due date)")
SLA_BREACHES = Metric("retention.sla.breaches", "counter", (),
                      "SLA breach alerts sent (per request, on its due date and each day after)")

ALL: tuple[Metric, ...] = (RECORDS_DELETED, PURGE_DURATION, BREAKER_TRIPS, OPEN_REQUESTS, MIN_DAYS_LEFT,
                           SLA_WARNINGS, SLA_BREACHES)


def purge_finished(path: str, target: Target, result: PurgeResult, *, dry_run: bool) -> None:
    """A real purge of one selection in one target finished: what it deleted and how long it took."""
    if dry_run or result.dry_run:
        return
    tags = {"path": path, "store": target.store, "category": target.category, "target": target.name}
    _send(RECORDS_DELETED, result.deleted, tags)
    _send(PURGE_DURATION, timedelta(seconds=result.seconds), tags)


def breaker_tripped(category: str) -> None:
    """The circuit breaker refused a category's daily plan."""
    _send(BREAKER_TRIPS, 1, {"category": category})


def sla_swept(open_requests: int, min_days_left: int) -> None:
    """What the SLA monitor found: how many requests are open and the least time one has left."""
    _send(OPEN_REQUESTS, open_requests, {})
    _send(MIN_DAYS_LEFT, min_days_left, {})


def sla_alert_sent(kind: str) -> None:
    """One SLA alert was sent: ``warning`` or ``breach``."""
    _send(SLA_BREACHES if kind == "breach" else SLA_WARNINGS, 1, {})


def _send(metric: Metric, value: float | timedelta, tags: dict[str, str]) -> None:
    """Send one metric under its tagged name and, when Airflow exports flat names, under its flat name."""
    try:
        from airflow.sdk.configuration import conf
        from airflow.sdk.observability import stats

        emit = {"counter": stats.incr, "gauge": stats.gauge, "timer": stats.timing}[metric.kind]
        emit(metric.name, value, tags=tags or None)  # type: ignore[operator]
        if metric.tags and conf.getboolean("metrics", "legacy_names_on", fallback=True):
            emit(metric.flat_name(tags), value)  # type: ignore[operator]
    except Exception as exc:  # a metric never fails a purge that has already happened
        log.warning("Metric %s not sent: %s", metric.name, exc)

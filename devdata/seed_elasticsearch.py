"""Elasticsearch: monthly log indices per tenant, ``cc-logs-{tenant}-{yyyy.mm}``.

Operation logs, agent status changes, call trajectories and SIP/MOS records (``tenant_id``,
``agent_id``, ``phone_number``, ``@timestamp``); index months are on the policy's calendar.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, Iterator

from devdata.report import SeedReport, store_report
from devdata.world import SeedConfig, build_world, calls_on, days, named_rng, tenant_ids
from include.retention.policy import ElasticsearchTarget, Policy, load_policy
from include.retention.timeutil import UTC

log = logging.getLogger(__name__)


def _es_target(policy: Policy) -> ElasticsearchTarget:
    for target in policy.targets:
        if isinstance(target, ElasticsearchTarget):
            return target
    raise LookupError("the policy has no Elasticsearch target")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def es_documents(config: SeedConfig, policy: Policy | None = None) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(tenant, index, doc id, source) of every log document, generated lazily."""
    policy = policy or load_policy()
    target = _es_target(policy)
    tz = policy.timezone
    tenant_field, time_field = target.tenant_field, target.time_field
    agent_field = target.subject_fields.get("agent", "agent_id")
    phone_field = target.subject_fields.get("phone_number", "phone_number")

    def index_of(tenant: str, moment: datetime) -> str:
        local = moment.astimezone(tz).date()
        return target.index.render(tenant=tenant, month=local.replace(day=1))  # type: ignore[union-attr]

    for tenant in build_world(config, policy):
        t = tenant.tenant_id
        for day in days(config, tenant):
            rng = named_rng(config, "es", t, day.isoformat())
            day_start = datetime.combine(day, datetime.min.time(), tz)
            for agent in tenant.agents:
                for hour, (old, new) in ((8, ("offline", "idle")), (18, ("idle", "offline"))):
                    moment = day_start + timedelta(hours=hour, seconds=rng.randint(0, 3_599))
                    yield t, index_of(t, moment), f"st-{t}-{agent.person_id}-{day:%Y%m%d}-{hour}", {
                        "log_type": "status_change", tenant_field: t, agent_field: agent.person_id,
                        time_field: _iso(moment), "from_status": old, "to_status": new}
            for admin in tenant.admins:
                moment = day_start + timedelta(hours=9, seconds=rng.randint(0, 8 * 3_600))
                yield t, index_of(t, moment), f"op-{t}-{admin.person_id}-{day:%Y%m%d}", {
                    "log_type": "operation_log", tenant_field: t, agent_field: admin.person_id,
                    time_field: _iso(moment), "action": rng.choice(("quick_reply.update", "agent.update",
                                                                   "keyword.add", "report.export"))}
            for call in calls_on(config, tenant, day, policy):
                base = {tenant_field: t, agent_field: call.agent_id, phone_field: call.customer_number,
                        "call_id": call.call_id, "direction": call.direction}
                yield t, index_of(t, call.started_at), f"tr-{call.call_id}", {
                    **base, "log_type": "call_trajectory", time_field: _iso(call.started_at),
                    "events": ["ringing", "answered", "hangup"] if call.answered else ["ringing", "no_answer"],
                    "duration_s": call.duration_s}
                if call.answered:
                    ended = call.started_at + timedelta(seconds=call.duration_s)
                    yield t, index_of(t, ended), f"sip-{call.call_id}", {
                        **base, "log_type": "sip_mos", time_field: _iso(ended), "sip_code": 200,
                        "mos": round(rng.uniform(3.2, 4.5), 2), "jitter_ms": rng.randint(1, 40),
                        "packet_loss_pct": round(rng.uniform(0, 1.5), 2)}


def es_mappings(target: ElasticsearchTarget) -> dict[str, Any]:
    """Exact (keyword) tenant, subject and id fields and a date time field, as term queries need."""
    properties: dict[str, Any] = {target.tenant_field: {"type": "keyword"}, target.time_field: {"type": "date"}}
    for name in (*target.subject_fields.values(), "log_type", "call_id", "direction", "action", "from_status",
                 "to_status", "events"):
        properties[name] = {"type": "keyword"}
    return {"properties": properties}


def es_client(elasticsearch_conn_id: str = "retention_elasticsearch") -> Any:
    """The official client from an Airflow connection ``elasticsearch://user:pw@host:port/scheme``."""
    from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(elasticsearch_conn_id)
    extra = conn.extra_dejson
    host, scheme = conn.host or "localhost", conn.schema or str(extra.get("scheme") or "http")
    if "://" in host:
        scheme, _, host = host.partition("://")
    args: dict[str, Any] = {"request_timeout": 120}
    if extra.get("api_key"):
        args["api_key"] = extra["api_key"]
    elif conn.login:
        args["basic_auth"] = (conn.login, conn.password or "")
    for key in ("ca_certs", "verify_certs"):
        if key in extra:
            args[key] = extra[key]
    return ElasticsearchPythonHook(hosts=[f"{scheme}://{host}:{conn.port or 9200}"], es_conn_args=args).get_conn


def seed_elasticsearch(
    config: SeedConfig,
    *,
    elasticsearch_conn_id: str = "retention_elasticsearch",
    policy: Policy | None = None,
) -> SeedReport:
    """Monthly log indices per tenant (created with keyword mappings), filled with bulk requests.

    Document ids are deterministic, so seeding again overwrites rather than duplicates.
    """
    from elasticsearch import helpers

    policy = policy or load_policy()
    started = time.monotonic()
    target = _es_target(policy)
    client = es_client(elasticsearch_conn_id)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    per_index: Counter[str] = Counter()
    created: set[str] = set()
    mappings = es_mappings(target)

    def actions() -> Iterator[dict[str, Any]]:
        for tenant, index, doc_id, source in es_documents(config, policy):
            if index not in created:
                if not client.indices.exists(index=index):
                    client.options(ignore_status=400).indices.create(
                        index=index, mappings=mappings, settings={"number_of_shards": 1, "number_of_replicas": 0})
                created.add(index)
            tally[tenant][target.qualified_name] += 1
            per_index[index] += 1
            yield {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}

    _, errors = helpers.bulk(client, actions(), chunk_size=min(config.chunk_rows, 5_000), raise_on_error=True,
                             stats_only=True)
    if errors:
        raise RuntimeError(f"{errors} documents failed to index")
    if created:
        client.indices.refresh(index=",".join(sorted(created)))
    seconds = time.monotonic() - started
    report = store_report(tally, tenant_ids(config), "elasticsearch", seconds, {"indices": dict(sorted(per_index.items()))})
    log.info("Seeded Elasticsearch: %d documents in %d indices in %.1fs", sum(per_index.values()), len(created), seconds)
    return report

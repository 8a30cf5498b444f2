"""One coverage check: each store's inventory, the classification, the ledger record, the alert.

``inventory_store`` lists one store through its role's connection and samples the items that
are neither covered nor exempt; it returns JSON (names and counts; never a value), which is
what travels in XCom. ``classify_results`` turns the stores' items into findings;
``record`` keeps them in the ledger and says which unknown items are new.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from include.retention.coverage.classify import classify, needs_sample, summary
from include.retention.coverage.exemptions import Exemptions
from include.retention.coverage.items import Finding, Item
from include.retention.policy import STORES, Policy

log = logging.getLogger(__name__)

COVERAGE_MYSQL_CONN_ID = "retention_coverage_mysql"
MYSQL_CONN_ID = "retention_mysql"
REDIS_CONN_ID = "retention_redis"
COS_CONN_ID = "retention_cos"
ELASTICSEARCH_CONN_ID = "retention_elasticsearch"
SCHEMAS_EXTRA = "coverage_schemas"


@dataclass(frozen=True)
class Settings:
    """The bounds of one check (every sample is bounded; the DAG's params and the CLI set them)."""

    redis_sample_keys: int = 20_000
    redis_keys_per_family: int = 5
    mysql_rows: int = 200
    cos_keys_per_prefix: int = 50
    es_documents: int = 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or not 0 <= value <= 100_000_000:
                raise ValueError(f"{name} must be an integer between 0 and 100000000, got {value!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        return cls(**{k: int(params[k]) for k in asdict(cls()) if k in params and params[k] is not None})


def _connection(conn_id: str) -> Any | None:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def mysql_source() -> tuple[str, tuple[str, ...], bool]:
    """(connection id, schemas, full view): the coverage connection when there is one, else
    ``retention_mysql``, which sees only the tables it was granted."""
    conn = _connection(COVERAGE_MYSQL_CONN_ID)
    full = conn is not None
    if conn is None:
        conn = _connection(MYSQL_CONN_ID)
    if conn is None:
        raise ValueError(f"no MySQL connection: define {COVERAGE_MYSQL_CONN_ID} (or {MYSQL_CONN_ID})")
    conn_id = COVERAGE_MYSQL_CONN_ID if full else MYSQL_CONN_ID
    schemas = conn.extra_dejson.get(SCHEMAS_EXTRA) or ([conn.schema] if conn.schema else [])
    if not schemas or not all(isinstance(s, str) and s for s in schemas):
        raise ValueError(f"connection {conn_id!r}: name the schemas (its schema, or extra {SCHEMAS_EXTRA}: [...])")
    return conn_id, tuple(schemas), full


def inventory_store(store: str, policy: Policy, exemptions: Exemptions, settings: Settings) -> dict[str, Any]:
    """One store's items (JSON: names and counts) and what its listing saw."""
    started = time.monotonic()
    should_sample = lambda item: needs_sample(item, exemptions)  # noqa: E731 - one line, used four times
    details: dict[str, Any] = {}
    if store == "mysql":
        from airflow.providers.mysql.hooks.mysql import MySqlHook

        from include.retention.coverage import inventory_mysql

        conn_id, schemas, full = mysql_source()
        conn = MySqlHook(mysql_conn_id=conn_id).get_conn()
        try:
            import MySQLdb.cursors

            conn.cursorclass = MySQLdb.cursors.Cursor
            items = inventory_mysql.inventory(conn, policy, schemas, should_sample=should_sample,
                                              rows=settings.mysql_rows)
        finally:
            conn.close()
        details = {"connection": conn_id, "schemas": list(schemas), "full_view": full}
        if not full:
            log.warning("Coverage: %s is not defined, so MySQL is seen as %s, which sees only the tables it is "
                        "granted", COVERAGE_MYSQL_CONN_ID, MYSQL_CONN_ID)
    elif store == "redis":
        from airflow.providers.redis.hooks.redis import RedisHook

        from include.retention.coverage import inventory_redis

        client = RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()
        items, details = inventory_redis.inventory(client, policy, should_sample=should_sample,
                                                   sample_keys=settings.redis_sample_keys,
                                                   keys_per_family=settings.redis_keys_per_family)
    elif store == "cos":
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from include.retention.coverage import inventory_cos

        hook = S3Hook(aws_conn_id=COS_CONN_ID)
        bucket = hook.service_config.get("bucket_name")
        if not bucket:
            raise ValueError(f"connection {COS_CONN_ID!r} names no bucket (extra service_config.s3.bucket_name)")
        items = inventory_cos.inventory(hook.get_conn(), str(bucket), policy, should_sample=should_sample,
                                        keys_per_prefix=settings.cos_keys_per_prefix)
        details = {"bucket": str(bucket)}
    elif store == "elasticsearch":
        from include.retention.coverage import inventory_elasticsearch
        from include.retention.stores.elasticsearch import ElasticsearchStore

        client = ElasticsearchStore(elasticsearch_conn_id=ELASTICSEARCH_CONN_ID, timezone=policy.timezone).client
        items = inventory_elasticsearch.inventory(client, policy, should_sample=should_sample,
                                                  documents=settings.es_documents)
    else:
        raise ValueError(f"unknown store {store!r}; use {', '.join(STORES)}")
    details["seconds"] = round(time.monotonic() - started, 3)
    details["items"] = len(items)
    return {"store": store, "items": [i.as_json() for i in items], "details": details}


def classify_results(results: Iterable[Mapping[str, Any]], exemptions: Exemptions) -> list[Finding]:
    items = [Item.from_json(i) for result in results for i in result["items"]]
    return classify(items, exemptions)


def record(
    results: Sequence[Mapping[str, Any]], exemptions: Exemptions, *, run_id: str, as_of: datetime,
    started_at: datetime,
) -> dict[str, Any]:
    """Classify, keep in the ledger; the summary and the new unknown items (JSON)."""
    from include.retention.ledger.coverage import record_run

    findings = classify_results(results, exemptions)
    stores = {r["store"]: r["details"] for r in results}
    fresh = set(record_run(run_id, as_of, findings, stores=stores, started_at=started_at))
    counts = summary(findings)
    new = [f.as_json() for f in findings if f.id in fresh]
    log.info("Coverage: %d items, %d covered, %d exempt, %d unknown (%d likely personal), %d new unknown",
             counts["items"], counts["covered"], counts["exempt"], counts["unknown"], counts["likely_personal"],
             len(new))
    return {"summary": counts, "new_unknown": new, "stores": sorted(stores)}

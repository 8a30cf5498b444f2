"""Derived copies read from the real servers through the stores' Airflow connections: each
statement agrees with what the server itself reports (MariaDB's variables, a private Redis's
saves and AOF, a versioned Swift bucket, an SLM policy on the Elasticsearch stand-in)."""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.retention.copies.read import read_copies
from include.retention.timeutil import UTC
from tests.fixtures.cos import new_bucket
from tests.fixtures.mysql import mysql_uri
from tests.fixtures.redis import PrivateRedis

pytestmark = pytest.mark.servers


def test_mysql_binary_logs_as_the_server_reports_them(servers: Any, mariadb_endpoint: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    # SHOW GLOBAL VARIABLES needs no grant: the server's own account reads them as any would.
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_MYSQL", mysql_uri(mariadb_endpoint, "information_schema"))
    conn = MySqlHook(mysql_conn_id="retention_mysql").get_conn()
    try:
        cur = conn.cursor()
        cur.execute("SELECT @@GLOBAL.log_bin")
        (log_bin,) = cur.fetchone()
    finally:
        conn.close()
    deleted = datetime.now(UTC)
    (copy,) = read_copies({"mysql": deleted}, UTC)
    assert copy.copy == "binary logs" and copy.read["log_bin"] == ("ON" if int(log_bin) else "OFF")
    if not int(log_bin):  # the dev MariaDB runs --skip-log-bin
        assert copy.ends == "none" and "log_bin OFF" in copy.statement
    else:
        assert copy.ends in ("at", "never")


def test_redis_rdb_save_and_aof_as_info_persistence_reports_them(servers: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    redis = PrivateRedis(tmp_path / "redis", persistent=False).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_RETENTION_REDIS", redis.conn_uri())
        client = redis.client()
        client.set("cc:1:k", "v")
        client.save()  # the test's own save, before the delete: the dump holds the key
        time.sleep(1.1)  # rdb_last_save_time has whole seconds
        client.delete("cc:1:k")
        deleted = datetime.now(UTC)
        rdb, aof = read_copies({"redis": deleted}, UTC)
        assert (rdb.ends, aof.ends) == ("next_event", "none")
        client.config_set("appendonly", "yes")
        time.sleep(1.1)
        client.save()
        rdb, aof = read_copies({"redis": deleted}, UTC)
        assert (rdb.ends, aof.ends, aof.read["aof_enabled"]) == ("none", "operator", 1)
    finally:
        redis.stop()


def test_cos_versions_and_lifecycle_as_the_bucket_reports_them(servers: Any, cos_endpoint: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(cos_endpoint, versioned=True)
    try:
        conn = json.loads(os.environ["AIRFLOW_CONN_RETENTION_COS"])
        conn["extra"]["service_config"] = {"s3": {"bucket_name": bucket.name}}
        monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS", json.dumps(conn))
        versions, lifecycle = read_copies({"cos": datetime.now(UTC)}, UTC)
        assert versions.read["versioning"] == "Enabled" and "VersionId" in versions.statement
        try:
            bucket.client.get_bucket_lifecycle_configuration(Bucket=bucket.name)
            answered = "rules"
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError
            answered = exc.response["Error"]["Code"]  # type: ignore[attr-defined]
        if answered == "NoSuchLifecycleConfiguration":
            assert lifecycle.ends == "none" and lifecycle.read["rules"] == 0
        elif answered != "rules":  # Swift's s3api: NotImplemented
            assert lifecycle.ends == "unknown" and answered in lifecycle.statement
            assert "could not be read" in lifecycle.statement
    finally:
        bucket.destroy()


def test_elasticsearch_slm_policy_retention(servers: Any, es_endpoint: Any, es_client: Any) -> None:
    repo, pid = f"cc-copies-{secrets.token_hex(3)}", f"cc-copies-{secrets.token_hex(3)}"
    deleted = datetime.now(UTC)
    before = read_copies({"elasticsearch": deleted}, UTC)
    es_client.snapshot.create_repository(name=repo, repository={"type": "fs", "settings": {"location": repo}})
    try:
        es_client.slm.put_lifecycle(policy_id=pid, schedule="0 30 1 * * ?", name="<cc-{now/d}>", repository=repo,
                                    config={"indices": ["cc-logs-*"]}, retention={"expire_after": "21d"})
        copies = {c.read.get("policy"): c for c in read_copies({"elasticsearch": deleted}, UTC)}
        assert copies[pid].ends == "at" and copies[pid].ends_at == deleted + timedelta(days=21)
        assert copies[pid].read["indices"] == ["cc-logs-*"]
    finally:
        es_client.slm.delete_lifecycle(policy_id=pid)
        es_client.snapshot.delete_repository(name=repo)
    assert pid not in {c.read.get("policy") for c in before}

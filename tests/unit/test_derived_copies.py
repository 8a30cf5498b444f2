"""Derived copies (issue 16, part 2): each reader's statement from what a server answers, the
certificate's section and flag, and the stand-in's SLM, snapshot repository and force-merge APIs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from include.retention.copies import cos_versions, es_snapshots, mysql_binlog, redis_persistence
from include.retention.copies.read import deleted_by_store, read_copies
from include.retention.copies.values import DerivedCopy, outliving, section
from include.retention.timeutil import UTC

pytest.register_assert_rewrite("tests.unit.es_standin_harness")
from tests.unit.es_standin_harness import NAMES  # noqa: E402 - after the rewrite hook

pytest_plugins = ["tests.unit.es_standin_harness"]  # its fixtures: server, es, index

pytestmark = pytest.mark.timeout(60)

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DUE = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- MySQL binary logs


@pytest.mark.parametrize(("variables", "ends", "ends_at", "outlives"), [
    pytest.param({"log_bin": "OFF", "binlog_format": "ROW", "binlog_expire_logs_seconds": "0"}, "none", None, False,
                 id="log-bin-off"),
    pytest.param({"log_bin": "ON", "binlog_format": "ROW", "binlog_expire_logs_seconds": "0", "expire_logs_days": "0"},
                 "never", None, True, id="never-expires"),
    pytest.param({"log_bin": "ON", "binlog_format": "ROW", "binlog_expire_logs_seconds": "604800"}, "at",
                 T + timedelta(days=7), False, id="mysql8-seconds-7d"),
    pytest.param({"log_bin": "ON", "binlog_format": "MIXED", "binlog_expire_logs_seconds": "2592000"}, "at",
                 T + timedelta(days=30), True, id="30d-after-due"),
    pytest.param({"log_bin": "ON", "binlog_format": "ROW", "binlog_expire_logs_seconds": "0",
                  "expire_logs_days": "3.500000"}, "at", T + timedelta(days=3.5), False, id="mariadb-days-fraction"),
    pytest.param({"log_bin": "1", "binlog_format": "STATEMENT", "expire_logs_days": "10"}, "at",
                 T + timedelta(days=10), False, id="older-server-days-only"),
])
def test_binlog_statement(variables: dict[str, str], ends: str, ends_at: datetime | None, outlives: bool) -> None:
    copy = mysql_binlog.state(mysql_binlog.BinlogSettings.from_variables(variables), deleted_by=T)
    assert (copy.ends, copy.ends_at, copy.outlives(DUE)) == (ends, ends_at, outlives)
    assert copy.read["log_bin"] in ("ON", "OFF")


def test_binlog_without_log_bin_is_refused() -> None:
    with pytest.raises(ValueError, match="log_bin"):
        mysql_binlog.BinlogSettings.from_variables({"binlog_format": "ROW"})


class _Cursor:
    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.rows, self.sql = rows, ""

    def execute(self, sql: str, params: Any) -> None:
        self.sql, self.params = sql, params

    def fetchall(self) -> list[tuple[str, str]]:
        return self.rows

    def close(self) -> None:
        pass


class _Conn:
    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.cur = _Cursor(rows)

    def cursor(self) -> _Cursor:
        return self.cur


def test_binlog_reads_show_global_variables() -> None:
    conn = _Conn([("log_bin", "ON"), ("binlog_format", "ROW"), ("binlog_expire_logs_seconds", "86400")])
    copy = mysql_binlog.read_copy(conn, deleted_by=T)
    assert conn.cur.sql.startswith("SHOW GLOBAL VARIABLES") and conn.cur.params == mysql_binlog.VARIABLES
    assert copy.ends_at == T + timedelta(days=1)


# --------------------------------------------------------------------------- Redis


def test_redis_save_after_delete_and_aof_on() -> None:
    rdb, aof = redis_persistence.state(
        [{"rdb_last_save_time": int((T + timedelta(hours=1)).timestamp()), "aof_enabled": 1}], deleted_by=T)
    assert (rdb.ends, aof.ends) == ("none", "operator")
    assert aof.outlives(DUE) is None


def test_redis_save_before_delete_on_cluster_takes_oldest() -> None:
    infos = [{"rdb_last_save_time": int((T + timedelta(hours=1)).timestamp()), "aof_enabled": 0},
             {"rdb_last_save_time": int((T - timedelta(hours=1)).timestamp()), "aof_enabled": 0}]
    rdb, aof = redis_persistence.state(infos, deleted_by=T)
    assert (rdb.ends, aof.ends, rdb.read["nodes"]) == ("next_event", "none", 2)
    assert rdb.read["rdb_last_save_time"] == "2026-03-02T09:00:00Z"


# --------------------------------------------------------------------------- COS


class _Error(Exception):
    def __init__(self, code: str) -> None:
        self.response = {"Error": {"Code": code}}


class _S3:
    def __init__(self, status: str | None, lifecycle: list[dict[str, Any]] | str) -> None:
        self.status, self.lifecycle = status, lifecycle

    def get_bucket_versioning(self, Bucket: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"Status": self.status} if self.status else {}

    def get_bucket_lifecycle_configuration(self, Bucket: str) -> dict[str, Any]:  # noqa: N803
        if isinstance(self.lifecycle, str):
            raise _Error(self.lifecycle)
        return {"Rules": self.lifecycle}


@pytest.mark.parametrize(("status", "lifecycle", "versions", "rules"), [
    pytest.param(None, "NoSuchLifecycleConfiguration", "not versioned", "none keeps", id="plain-no-rules"),
    pytest.param("Enabled", "NotImplemented", "VersionId", "could not be read", id="swift-not-implemented"),
    pytest.param("Enabled", [{"ID": "keep30", "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 30}},
                             {"ID": "off", "Status": "Disabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 9}}],
                 "VersionId", "rule keep30: noncurrent versions kept 30 day(s)", id="rule-keeps-noncurrent"),
])
def test_cos_statements(status: str | None, lifecycle: Any, versions: str, rules: str) -> None:
    v, r = cos_versions.read_copies(_S3(status, lifecycle), "bkt")
    assert versions in v.statement and v.ends == "none"
    assert rules in r.statement
    assert "day(s)" not in r.statement or "off" not in r.statement


# --------------------------------------------------------------------------- Elasticsearch


@pytest.mark.parametrize(("text", "seconds"), [("30d", 2_592_000), ("12h", 43_200), ("90m", 5_400), ("1.5d", 129_600)])
def test_duration(text: str, seconds: float) -> None:
    assert es_snapshots.duration(text).total_seconds() == seconds


def test_slm_statements() -> None:
    policies = {
        "a": {"policy": {"schedule": "0 30 1 * * ?", "repository": "r", "retention": {"expire_after": "30d"}}},
        "b": {"policy": {"schedule": "0 30 1 * * ?", "repository": "r", "config": {"indices": ["calls-*"]}}},
        "c": {"policy": {"repository": "r", "retention": {"expire_after": "7d", "min_count": 5}}},
    }
    a, b, c = es_snapshots.state(policies, deleted_by=T)
    assert (a.ends, a.ends_at, a.outlives(DUE)) == ("at", T + timedelta(days=30), True)
    assert (b.ends, b.read["indices"]) == ("never", ["calls-*"])
    assert c.ends == "unknown" and "min_count 5" in c.statement
    assert es_snapshots.state({}, deleted_by=T)[0].ends == "none"
    assert "could not be read" in es_snapshots.state("400 illegal_argument_exception", deleted_by=T)[0].statement


def test_standin_slm_round_trip(es: Elasticsearch) -> None:
    from include.retention.copies.es_snapshots import read_copies as es_read

    assert es.slm.get_lifecycle().body == {}
    repo, pid = f"repo-{next(NAMES)}", f"nightly-{next(NAMES)}"
    with pytest.raises(BadRequestError, match="no such repository"):
        es.slm.put_lifecycle(policy_id=pid, schedule="0 30 1 * * ?", name="<n-{now/d}>", repository=repo)
    es.snapshot.create_repository(name=repo, repository={"type": "fs", "settings": {"location": "/tmp/x"}})
    assert es.snapshot.get_repository(name=repo)[repo]["type"] == "fs"
    es.slm.put_lifecycle(policy_id=pid, schedule="0 30 1 * * ?", name="<n-{now/d}>", repository=repo,
                         config={"indices": ["calls-*"]}, retention={"expire_after": "14d", "max_count": 50})
    body = es.slm.get_lifecycle(policy_id=pid).body
    assert body[pid]["version"] == 1 and body[pid]["policy"]["retention"]["expire_after"] == "14d"
    (copy,) = es_read(es, deleted_by=T)
    assert (copy.ends, copy.ends_at) == ("at", T + timedelta(days=14))
    with pytest.raises(NotFoundError):
        es.slm.get_lifecycle(policy_id="absent")
    es.slm.delete_lifecycle(policy_id=pid)
    es.snapshot.delete_repository(name=repo)
    assert es.slm.get_lifecycle().body == {}


def test_standin_forcemerge(es: Elasticsearch, index: str) -> None:
    assert es.indices.forcemerge(index=index, only_expunge_deletes=True)["_shards"]["failed"] == 0
    with pytest.raises(BadRequestError):
        es.indices.forcemerge(index=index, only_expunge_deletes=True, max_num_segments=1)


# --------------------------------------------------------------------------- section, reading, flag


def test_section_flags_a_copy_that_outlives_the_due_date() -> None:
    late = DerivedCopy("mysql", "binary logs", "at", "x", ends_at=DUE + timedelta(days=1))
    soon = DerivedCopy("redis", "append-only file", "operator", "y")
    body = section([late, soon], due_at=DUE, read_at=T)
    assert body["outlive_due"] is True and body["unknown"] == 1
    assert [c["store"] for c in outliving({"certificate": {"derived_copies": body}})] == ["mysql"]
    assert section([soon], due_at=DUE, read_at=T)["outlive_due"] is False
    with pytest.raises(ValueError):
        DerivedCopy("mysql", "binary logs", "at", "no instant")


def test_read_copies_states_a_failing_store_as_unread() -> None:
    def boom(at: datetime, tz: Any) -> list[DerivedCopy]:
        raise ConnectionError("refused")

    def fine(at: datetime, tz: Any) -> list[DerivedCopy]:
        return [DerivedCopy("mysql", "binary logs", "none", "off")]

    copies = read_copies({"redis": T, "mysql": T}, UTC, readers={"mysql": fine, "redis": boom})
    assert [(c.store, c.ends) for c in copies] == [("mysql", "none"), ("redis", "unknown")]
    assert "could not be read (ConnectionError)" in copies[1].statement


def test_deleted_by_store_takes_each_store_latest() -> None:
    class S:
        def __init__(self, store: str, at: datetime | None) -> None:
            self.store, self.verified_at = store, at

    got = deleted_by_store([S("mysql", T), S("mysql", T + timedelta(hours=1)), S("cos", None)], fallback=DUE)
    assert got == {"mysql": T + timedelta(hours=1), "cos": DUE}


# --------------------------------------------------------------------------- the certificate


def test_the_certificate_states_each_copy_signed_and_rendered(policy: Any) -> None:
    from include.retention.certificates.document import build, sign, verify_document
    from include.retention.certificates.render import render_html, render_markdown
    from tests.unit.test_requests import KEYS, RUN_AFTER, request, step

    due = RUN_AFTER + timedelta(days=30)
    req = request(request_id="DEL-9", state="verifying", subject_type="agent", due_at=due, subject_hash="h" * 64)
    steps = [step("call_data.call_records", "mysql")]
    binlog = mysql_binlog.state(mysql_binlog.BinlogSettings.from_variables(
        {"log_bin": "ON", "binlog_format": "ROW", "binlog_expire_logs_seconds": str(40 * 86_400)}), deleted_by=RUN_AFTER)
    copies = section([binlog], due_at=due, read_at=RUN_AFTER)
    doc = sign(build(policy, req, steps, [], verified_at=RUN_AFTER, issued_at=RUN_AFTER, derived_copies=copies), KEYS)
    assert verify_document(doc, KEYS).ok  # a copy outliving the due date is stated, not a refusal
    assert doc["certificate"]["derived_copies"]["outlive_due"] is True
    assert outliving(doc)[0]["copy"] == "binary logs"
    markdown, page = render_markdown(doc), render_html(doc)
    assert "## Derived copies" in markdown and "**Outlives the due date.**" in markdown
    assert "binary logs (ROW) hold" in markdown and "<h2>Derived copies</h2>" in page
    without = sign(build(policy, req, steps, [], verified_at=RUN_AFTER, issued_at=RUN_AFTER), KEYS)
    assert "derived_copies" not in without["certificate"] and "Derived copies" not in render_markdown(without)


def test_the_sla_monitor_raises_copies_that_outlive_the_due_date_once() -> None:
    from datetime import date

    from include.retention import sla

    late = section([DerivedCopy("mysql", "binary logs", "never", "x")], due_at=DUE, read_at=T)
    fine = section([DerivedCopy("mysql", "binary logs", "none", "off")], due_at=DUE, read_at=T)
    alerts = sla.copies_alerts([("DEL-1", {"certificate": {"derived_copies": late}}),
                                ("DEL-2", {"certificate": {"derived_copies": fine}}), ("DEL-3", {"certificate": {}})], T)
    assert [(a.request_id, a.kind) for a in alerts] == [("DEL-1", "copies")]
    assert "DEL-1" in alerts[0].subject and "derived copy" in alerts[0].html
    assert sla.due_alerts(alerts, date(2026, 3, 3), {("DEL-1", "copies", date(2026, 3, 2))}) == []
    assert sla.due_alerts(alerts, date(2026, 3, 3), set()) == alerts

"""Termination and deletion requests end to end: ``dag.test()`` of ``deletion_requests`` on the
real servers (MariaDB, Redis, Swift s3api, the Elasticsearch stand-in), each test with a
small tenant of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stores, World, base_conf, cos_connection, load_dag, task_states

pytestmark = [pytest.mark.servers, pytest.mark.slow]

UTC = timezone.utc


@pytest.fixture(scope="module")
def requests_dag(airflow_db: Any) -> Any:
    return load_dag("deletion_requests", "deletion_requests")


@pytest.fixture(scope="module")
def untouched_world(stores: Stores, today: Any) -> World:
    """A tenant no test deletes from: the refusal cases share it."""
    return World(stores, stores.new_tenant(), today).seed()


def run(dag: Any, conf: dict[str, Any], **kwargs: Any) -> Any:
    return dag.test(logical_date=None, run_conf=conf, **kwargs)


def request_of(reference: str) -> Any:
    from include.retention.ledger.requests import find_by_reference

    found = find_by_reference(reference)
    assert found is not None, f"no request with reference {reference}"
    return found


def steps_of(request_id: str) -> dict[str, Any]:
    from include.retention.ledger.request_steps import list_steps

    return {s.qualified_name: s for s in list_steps(request_id)}


def audit_rows(stores: Stores, run_id: str) -> list[tuple[Any, ...]]:
    return stores.ledger("SELECT category, target, deleted, outcome FROM purge_audit WHERE run_id = %s", (run_id,))


def certificate_of(request_id: str) -> dict[str, Any]:
    from include.retention.certificates.issue import load

    stored = load(request_id)
    assert stored is not None, f"no certificate for {request_id}"
    return stored.document


def submit(conf: dict[str, Any]) -> Any:
    """What the register task does, without a DAG run (for the many refusal cases)."""
    from include.retention.requests.intake import submit
    from include.retention.policy import load_policy

    return submit(load_policy(), conf, run_after=datetime.now(UTC), run_id="manual__test", crypto=keys())


def keys() -> Any:
    from include.retention.crypto import RetentionCrypto

    return RetentionCrypto.from_connection()


# --------------------------------------------------------------------------- termination


def test_termination_purges_every_store_and_certifies(requests_dag: Any, world: World, stores: Stores) -> None:
    from include.retention.certificates.document import verify_document

    bystander = World(stores, world.tenant + "1", world.day).seed()  # an id that starts with the tenant's
    stores.tenants.append(bystander.tenant)
    conf = base_conf(request_type="termination", tenant_id=world.tenant, reference=f"TKT-{world.tenant}-T")

    dag_run = run(requests_dag, conf)

    assert str(dag_run.state) == "success", task_states(dag_run)
    request = request_of(conf["reference"])
    assert request.state == "completed" and request.completed_at is not None
    assert request.due_at - request.received_at == timedelta(days=30)
    for table in ("agents", "administrators", "call_records", "call_metrics", "service_records", "quick_replies",
                  "blacklist_numbers", "keywords", "role_permissions", "popup_settings"):
        assert world.rows(table) == 0, table
        assert bystander.rows(table) > 0, table
    assert world.redis_keys() == {f"cc:{world.tenant}:queue:inbound"}  # no policy target names queues
    assert world.objects() == set()
    assert world.log_docs() == 0
    assert bystander.redis_keys() and bystander.objects() and bystander.log_docs() == 5

    steps = steps_of(request.request_id)
    assert len(steps) == 17 and all(s.state == "verified" and s.verified_remaining == 0 for s in steps.values())
    document = certificate_of(request.request_id)
    body = document["certificate"]
    assert verify_document(document, keys()).ok
    assert body["outcome"]["records_deleted"] == sum(s.deleted for s in steps.values()) > 0
    assert body["backups"]["status"] == "deleted" and body["backups"]["objects_deleted"] == 9
    assert body["runs"][0]["run_id"] == dag_run.run_id
    assert body["audit"]["deleted"] == body["outcome"]["records_deleted"]
    obj = stores.s3().get_object(Bucket=stores.bucket, Key=f"certificates/{request.request_id}.json")
    assert json.loads(obj["Body"].read()) == document
    md = stores.s3().get_object(Bucket=stores.bucket, Key=f"certificates/{request.request_id}.md")["Body"].read()
    assert request.request_id.encode() in md


# --------------------------------------------------------------------------- deletion


@pytest.fixture(scope="module")
def deleted_agent(requests_dag: Any, stores: Stores, today: Any) -> dict[str, Any]:
    """Agent a1 of a fresh tenant, deleted through the DAG (shared by the tests below)."""
    w = World(stores, stores.new_tenant(), today).seed()
    conf = base_conf(request_type="deletion", tenant_id=w.tenant, subject_type="agent", subject_id="a1",
                     reference=f"TKT-{w.tenant}-A1")
    dag_run = run(requests_dag, conf)
    return {"world": w, "conf": conf, "dag_run": dag_run, "request": request_of(conf["reference"])}


def test_deletion_of_an_agent_purges_only_that_agent(deleted_agent: dict[str, Any]) -> None:
    w, dag_run, request = deleted_agent["world"], deleted_agent["dag_run"], deleted_agent["request"]
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert request.state == "completed"
    assert w.rows("agents", "agent_id = 'a1'") == 0 and w.rows("agents", "agent_id = 'a10'") == 1
    assert w.rows("call_records", "agent_id = 'a1'") == 0 and w.rows("call_records", "agent_id = 'a10'") == 2
    assert w.rows("call_metrics", "agent_id = 'a1'") == 0 and w.rows("call_metrics") == 1
    assert w.rows("service_records", "agent_id = 'a1'") == 0 and w.rows("service_records") == 2
    assert w.rows("administrators") == 1 and w.rows("quick_replies") == 1  # not the subject; configuration stays
    keys_left = w.redis_keys()
    assert not any(":a1:" in k for k in keys_left) and f"cc:{w.tenant}:agent:a10:profile" in keys_left
    objects = w.objects()
    assert w.recordings["c1"] not in objects and w.recordings["c2"] in objects and w.recordings["c4"] in objects
    assert len([k for k in objects if k.startswith("backups/")]) == 9  # backups expire by date instead
    assert w.log_docs({"term": {"agent_id": "a1"}}) == 0 and w.log_docs() == 3


def test_deletion_certificate_is_signed_and_holds_no_subject_id(deleted_agent: dict[str, Any], stores: Stores) -> None:
    from include.retention.certificates.document import verify_document
    from include.retention.certificates.render import render_html, render_markdown
    from include.retention.cli.verify_certificate import main

    request = deleted_agent["request"]
    document = certificate_of(request.request_id)
    body = document["certificate"]
    assert verify_document(document, keys()).ok
    text = json.dumps(document) + render_markdown(document) + render_html(document)
    assert '"a1"' not in text and "agent_id = a1" not in text
    assert body["request"]["subject"]["keyed_hash"] == keys().subject_hash(request.tenant_id, "agent", "a1")
    backups = body["backups"]
    assert backups["status"] == "expiring" and backups["expire_before_due"]
    assert datetime.fromisoformat(backups["expire_by"]) <= request.due_at
    by_step = {f"{d['category']}.{d['target']}": d for d in body["deletions"]}
    assert by_step["call_data.recordings"]["deleted"] == 1 and by_step["call_data.call_records"]["deleted"] == 2
    assert by_step["agent_info.agent_state"]["deleted"] == 2 and by_step["log_data.cc_logs"]["deleted"] == 2
    # tampering breaks it
    forged = json.loads(json.dumps(document))
    forged["certificate"]["outcome"]["records_deleted"] += 1
    assert not verify_document(forged, keys()).ok
    # the command an auditor runs
    path = ROOT / ".run" / f"cert-{request.request_id}.json"
    path.write_text(json.dumps(document))
    try:
        assert main(["verify", str(path)]) == 0
        script = [sys.executable, str(ROOT / "scripts" / "verify_certificate.py"), str(path), "--key-env", "CERT_KEY"]
        env = {**os.environ, "CERT_KEY": keys().certificate_key.decode()}
        checked = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0 and checked.stdout.startswith("OK: CERT-"), checked.stdout + checked.stderr
        path.write_text(json.dumps(forged))
        assert main(["verify", str(path)]) == 1
        checked = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120)
        assert checked.returncode == 1 and "INVALID" in checked.stdout
    finally:
        path.unlink()


def test_same_reference_twice_is_one_request(requests_dag: Any, deleted_agent: dict[str, Any], stores: Stores) -> None:
    conf = deleted_agent["conf"]
    before = stores.ledger("SELECT COUNT(*) FROM requests WHERE reference = %s", (conf["reference"],))

    again = run(requests_dag, conf)

    assert str(again.state) == "success", task_states(again)
    assert stores.ledger("SELECT COUNT(*) FROM requests WHERE reference = %s", (conf["reference"],)) == before
    assert request_of(conf["reference"]).state == "completed"
    states = task_states(again)
    assert states["existing_certificate"] == "success" and states["plan"] == "skipped"
    assert audit_rows(stores, again.run_id) == []  # nothing purged the second time


def test_a_reference_naming_another_request_is_refused(deleted_agent: dict[str, Any]) -> None:
    from include.retention.requests.intake import RequestConflict

    conf = {**deleted_agent["conf"], "subject_id": "a10"}
    with pytest.raises(RequestConflict, match="differs in subject_id"):
        submit(conf)
    assert deleted_agent["world"].rows("agents", "agent_id = 'a10'") == 1


def test_deletion_of_a_phone_number(requests_dag: Any, world: World) -> None:
    conf = base_conf(request_type="deletion", tenant_id=world.tenant, subject_type="phone_number",
                     subject_id=world.P1, reference=f"TKT-{world.tenant}-P1")

    dag_run = run(requests_dag, conf)

    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.rows("call_records", "customer_number = %s", (world.P1,)) == 0
    assert world.rows("call_records") == 2 and world.rows("service_records") == 2
    objects = world.objects()
    assert world.recordings["c1"] not in objects and world.recordings["c2"] not in objects
    assert world.recordings["c4"] in objects
    assert world.log_docs({"term": {"phone_number": world.P1}}) == 0 and world.log_docs() == 3
    assert world.rows("agents") == 2 and len(world.redis_keys()) == 6  # agent data is not the subject's
    steps = steps_of(request_of(conf["reference"]).request_id)
    assert not any(s.store == "redis" for s in steps.values())
    assert {s.kind for s in steps.values()} == {"purge", "purge_keys", "expiry"}


# --------------------------------------------------------------------------- preview and refusals


def test_preview_counts_and_deletes_nothing(requests_dag: Any, world: World, stores: Stores) -> None:
    conf = base_conf(request_type="termination", tenant_id=world.tenant, reference=f"TKT-{world.tenant}-PV",
                     mode="preview")
    objects, keys_before = world.objects(), world.redis_keys()
    from devservers.request_runs import run_request_via_dag_test

    outcome = run_request_via_dag_test(conf)  # what the demo calls

    assert outcome["dag_run_state"] == "success", outcome
    assert outcome["request"]["state"] == "planned" and outcome["certificate"] is None
    request = request_of(conf["reference"])
    assert request.state == "planned" and request.mode == "preview"
    assert world.rows("agents") == 2 and world.rows("call_records") == 4 and world.log_docs() == 5
    assert world.objects() == objects and world.redis_keys() == keys_before
    planned = {n: s.planned for n, s in steps_of(request.request_id).items()}
    assert planned["agent_info.agents"] == 2 and planned["call_data.recordings"] == 3
    assert planned["log_data.cc_logs"] == 5 and planned["agent_info.agent_info_backups"] == 3
    assert audit_rows(stores, outcome["run_id"]) == []
    assert stores.ledger("SELECT COUNT(*) FROM certificates WHERE request_id = %s", (request.request_id,))[0][0] == 0
    # the same reference with mode execute carries the previewed request out
    executed = run(requests_dag, {**conf, "mode": "execute"})
    assert str(executed.state) == "success", task_states(executed)
    assert request_of(conf["reference"]).state == "completed" and world.rows("agents") == 0


def test_an_unknown_tenant_is_rejected_by_the_run(requests_dag: Any, stores: Stores) -> None:
    reference = f"TKT-{stores.tenant_base}-UNKNOWN"
    conf = base_conf(request_type="termination", tenant_id="1", reference=reference)

    dag_run = run(requests_dag, conf)

    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert states["register"] == "failed" and states["plan"] == "upstream_failed"
    request = request_of(reference)
    assert request.state == "rejected" and "unknown tenant 1" in (request.error or "")


# Malformed and hostile requests: the hostile-input catalogue (docs/RELIABILITY.md,
# tests/e2e/test_hostile_requests.py).


def test_a_subject_on_legal_hold_is_refused(untouched_world: World) -> None:
    world = untouched_world
    from include.retention.ledger.holds import place_hold, release_hold

    hold = place_hold(world.tenant, reason="litigation", placed_by="legal", subject_type="agent",
                             subject_id="a1", crypto=keys())
    try:
        conf = base_conf(request_type="deletion", tenant_id=world.tenant, subject_type="agent", subject_id="a1",
                         reference=f"TKT-{world.tenant}-HOLD")
        assert submit(conf).outcome == "rejected"
        request = request_of(conf["reference"])
        assert request.state == "rejected" and f"legal hold #{hold}" in (request.error or "")
        assert world.rows("agents", "agent_id = 'a1'") == 1
    finally:
        release_hold(hold)


def test_a_hold_on_another_subject_keeps_the_records_naming_it(requests_dag: Any, world: World) -> None:
    """P1's erasure meets agent a10's legal hold: call c2 (a10 with P1), its recording and log
    document stay and are counted as withheld; verify does not count them as left over. Logs
    alone have no backups, so that request completes and its certificate says what it kept; the
    whole request waits for the hold on its expiry steps (the tenant's backups cannot be split)."""
    from include.retention.certificates.document import verify_document
    from include.retention.certificates.render import render_markdown
    from include.retention.ledger.holds import place_hold, release_hold

    hold = place_hold(world.tenant, reason="litigation", placed_by="legal", subject_type="agent",
                             subject_id="a10", crypto=keys())
    try:
        logs_only = base_conf(request_type="deletion", tenant_id=world.tenant, subject_type="phone_number",
                              subject_id=world.P1, categories=["log_data"], reference=f"TKT-{world.tenant}-P1-LOGS")
        assert str(run(requests_dag, logs_only).state) == "success"
        document = certificate_of(request_of(logs_only["reference"]).request_id)
        outcome = document["certificate"]["outcome"]
        assert (outcome["records_deleted"], outcome["records_withheld"]) == (1, 1)
        assert outcome["withheld_under_holds"] == [hold]  # the audit's why, by hold id
        markdown = render_markdown(document)
        held_hash = keys().subject_hash(world.tenant, "agent", "a10")
        assert f"kept under another subject's legal hold:** 1 (holds #{hold})" in markdown
        assert '"a10"' not in json.dumps(document) and held_hash not in json.dumps(document)
        assert verify_document(document, keys()).ok

        conf = base_conf(request_type="deletion", tenant_id=world.tenant, subject_type="phone_number",
                         subject_id=world.P1, reference=f"TKT-{world.tenant}-P1-HELD")

        dag_run = run(requests_dag, conf)

        assert str(dag_run.state) == "failed", task_states(dag_run)
        assert world.rows("call_records", "customer_number = %s", (world.P1,)) == 1  # c2, a10's call
        assert world.rows("call_records", "customer_number = %s AND agent_id = 'a10'", (world.P1,)) == 1
        assert world.rows("service_records", "customer_number = %s", (world.P1,)) == 1
        objects = world.objects()
        assert world.recordings["c1"] not in objects and world.recordings["c2"] in objects
        assert world.log_docs({"term": {"phone_number": world.P1}}) == 1
        request = request_of(conf["reference"])
        steps = steps_of(request.request_id)
        withheld = {n: s.details.get("withheld_for_hold") for n, s in steps.items() if s.state == "verified"}
        assert withheld["call_data.call_records"] == 1 and withheld["call_analytics.service_records"] == 1
        assert withheld["call_data.recordings"] == 1 and withheld["log_data.cc_logs"] == 1
        assert all(s.verified_remaining == 0 for s in steps.values() if s.state == "verified")
        assert request.state == "failed" and f"legal hold #{hold}" in (request.error or "")
        assert {s.kind for s in steps.values() if s.state != "verified"} == {"expiry"}
    finally:
        release_hold(hold)


# --------------------------------------------------------------------------- partial failure


def test_s3_stopped_mid_request_fails_it_and_a_rerun_resumes_it(
    requests_dag: Any, world: World, stores: Stores, private_swift: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop our own S3 server after the first COS step: the request fails naming the step;
    after a restart a rerun completes it without touching the verified steps."""
    from devservers import swift
    from include.retention.stores.cos import CosStore
    from include.retention.stores.cos_client import install_content_md5

    endpoint = private_swift.endpoint()
    bucket = f"cc-req-private-{world.tenant}"
    client = install_content_md5(swift.s3_client(endpoint))
    client.create_bucket(Bucket=bucket)
    for key in [*world.recordings.values(), *world.backups]:  # the tenant's objects, on our own server
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS", cos_connection(
        endpoint, bucket, retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=20))

    real_purge = CosStore.purge
    calls = {"n": 0}

    def stop_before_second_purge(self: CosStore, target: Any, selection: Any, *, dry_run: bool = False) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the first COS step is purged and verified; then the server goes away
            private_swift.stop_server("proxy")
        return real_purge(self, target, selection, dry_run=dry_run)

    monkeypatch.setattr(CosStore, "purge", stop_before_second_purge)
    conf = base_conf(request_type="termination", tenant_id=world.tenant, reference=f"TKT-{world.tenant}-S3")
    try:
        first = run(requests_dag, conf)
        assert str(first.state) == "failed"
        request = request_of(conf["reference"])
        assert request.state == "failed"
        assert request.failed_step == "call_data.recordings" and "call_data.recordings" in (request.error or "")
        after_first = steps_of(request.request_id)
        verified = {n for n, s in after_first.items() if s.state == "verified"}
        assert "agent_info.agent_info_backups" in verified and "agent_info.agents" in verified
        assert after_first["call_data.recordings"].state == "failed"
        assert world.rows("agents") == 0 and world.log_docs() == 0  # the other stores went ahead
    finally:
        if not private_swift.running():
            private_swift.restart_server("proxy")

    second = run(requests_dag, conf)

    assert str(second.state) == "success", task_states(second)
    request = request_of(conf["reference"])
    assert request.state == "completed" and request.attempts == 2
    after_second = steps_of(request.request_id)
    for name in verified:  # untouched by the rerun
        assert after_second[name].run_id == first.run_id and after_second[name].attempts == 1, name
        assert after_second[name].verified_at == after_first[name].verified_at
    rerun_targets = {f"{c}.{t}" for c, t, _d, _o in audit_rows(stores, second.run_id)}
    assert rerun_targets and not rerun_targets & verified
    assert after_second["call_data.recordings"].run_id == second.run_id
    remaining = client.list_objects_v2(Bucket=bucket, Prefix="recordings/").get("KeyCount", 0)
    assert remaining == 0
    runs = {r["run_id"] for r in certificate_of(request.request_id)["certificate"]["runs"]}
    assert {first.run_id, second.run_id} <= runs
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys_left = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys_left:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys_left, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def test_a_failed_step_stays_visible_while_the_other_stores_go_ahead(
    world: World, stores: Stores, private_swift: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The COS steps fail; before their retry, the next store's task runs (as it does while
    Airflow waits to retry purge_cos). The request stays ``failed``, naming the COS step and
    its error, until the retry of that step succeeds; then it is ``in_progress`` again."""
    from devservers import swift
    from include.retention.airflow_context import RunRef
    from include.retention.policy import load_policy
    from include.retention.requests.runner import RequestStepFailed, Runner
    from include.retention.stores.cos_client import install_content_md5

    endpoint = private_swift.endpoint()
    bucket = f"cc-req-visible-{world.tenant}"
    client = install_content_md5(swift.s3_client(endpoint))
    client.create_bucket(Bucket=bucket)
    for key in [*world.recordings.values(), *world.backups]:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS", cos_connection(
        endpoint, bucket, retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=20))
    conf = base_conf(request_type="termination", tenant_id=world.tenant, reference=f"TKT-{world.tenant}-VIS")
    request_id = submit(conf).request.request_id
    runner = Runner(load_policy(), keys(), RunRef("manual__visible", "deletion_requests", "purge"), datetime.now(UTC))
    runner.plan(request_id)
    private_swift.stop_server("proxy")
    try:
        with pytest.raises(RequestStepFailed):
            runner.execute_store(request_id, "cos")
        failed = request_of(conf["reference"])
        assert failed.state == "failed" and failed.failed_step is not None
        assert steps_of(request_id)[failed.failed_step].store == "cos" and failed.error
        runner.execute_store(request_id, "mysql")  # the next store's task, while purge_cos waits for its retry
        during = request_of(conf["reference"])
        assert (during.state, during.failed_step, during.error) == ("failed", failed.failed_step, failed.error)
        assert world.rows("agents") == 0  # MySQL went ahead
    finally:
        if not private_swift.running():
            private_swift.restart_server("proxy")
    runner.execute_store(request_id, "cos")  # the retry succeeds
    after = request_of(conf["reference"])
    assert (after.state, after.failed_step, after.error) == ("in_progress", None, None)
    for store in ("redis", "elasticsearch"):
        runner.execute_store(request_id, store)
    runner.verify(request_id)
    assert request_of(conf["reference"]).state == "verifying"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys_left = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys_left:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys_left, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


# --------------------------------------------------------------------------- late data


def test_late_data_of_a_deleted_subject_is_swept_by_the_next_daily_run(
    deleted_agent: dict[str, Any], stores: Stores, airflow_db: Any
) -> None:
    w, request = deleted_agent["world"], deleted_agent["request"]
    assert request.state == "completed"
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    stores.query("INSERT INTO agents (tenant_id, agent_id, name_enc, role, created_at, updated_at)"
                 " VALUES (%s, 'a1', %s, 'agent', %s, %s)", (w.tenant, b"enc", now, now))
    stores.redis().set(f"cc:{w.tenant}:agent:a1:status", "busy")
    daily = load_dag("retention_daily", "retention_agent_info")
    as_of = datetime.now(UTC).replace(microsecond=0)
    assert request.received_at <= as_of <= request.due_at

    dag_run = daily.test(logical_date=as_of, run_conf={"dry_run": False})

    assert str(dag_run.state) == "success", task_states(dag_run)
    assert w.rows("agents", "agent_id = 'a1'") == 0 and w.rows("agents", "agent_id = 'a10'") == 1
    assert not any(":a1:" in k for k in w.redis_keys())
    assert f"cc:{w.tenant}:agent:a10:profile" in w.redis_keys()

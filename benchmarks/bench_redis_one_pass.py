"""Benchmark: the Redis store's old SCAN per tenant vs one pass per target, side by side in one process.

    .venv/bin/python benchmarks/bench_redis_one_pass.py [TENANTS KEYS TERMINATED]   # default 500 200000 25

The old side is ``include/retention/stores/redis.py`` as it was at ``3dfedb7`` (the commit before
the one-pass change), read with ``git show`` into a temporary module. A private redis-server (no
persistence) on a spare port, db 0: TENANTS tenants, KEYS keys in all, TERMINATED of them
terminated; both agent_info Redis targets. Each step as the daily DAG runs it: plan (count),
purge (the audit's count, then the purge), verify (count); the data is reseeded before each
purge. SCANs are counted by the server (``INFO commandstats``).
"""
from __future__ import annotations

import importlib.util, json, os, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import redis

from include.retention.policy import load_policy
from include.retention.selections import TenantSelection
from include.retention.stores.redis import RedisStore

OLD_COMMIT = "3dfedb7"
TENANTS, KEYS, TERMINATED = (int(a) for a in (sys.argv[1:4] if len(sys.argv) > 3 else (500, 200_000, 25)))
old_source = Path(tempfile.mkdtemp()) / "old_redis_store.py"
old_source.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:include/retention/stores/redis.py"],
                                     check=True, capture_output=True, text=True).stdout)
spec = importlib.util.spec_from_file_location("old_redis_store", old_source)
old_mod = importlib.util.module_from_spec(spec); sys.modules["old_redis_store"] = old_mod; spec.loader.exec_module(old_mod)  # type: ignore

with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
work = Path(tempfile.mkdtemp())
proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL, start_new_session=True)
try:
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping(); break
        except redis.ConnectionError:
            time.sleep(0.05)
    os.environ["AIRFLOW_CONN_BENCH_REDIS"] = json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port, "extra": {"db": 0}})
    per_tenant = KEYS // TENANTS  # 1/4 agent_state (2 per agent), 1/2 sessions (4 per agent), 1/4 queues
    agents = per_tenant // 8
    tenants = [str(1000 + i) for i in range(TENANTS)]
    terminated = tenants[:: TENANTS // TERMINATED][:TERMINATED]

    def seed() -> None:
        client.flushdb()
        pipe = client.pipeline(transaction=False)
        for t in tenants:
            for a in range(agents):
                for k in ("profile", "status"):
                    pipe.set(f"cc:{t}:agent:a{a}:{k}", b"x")
                for s in range(4):
                    pipe.set(f"cc:{t}:session:a{a}:s{s}", b"x")
                pipe.set(f"cc:{t}:queue:q{a}", b"x"); pipe.set(f"cc:{t}:ivr:q{a}", b"x")
            if len(pipe) > 20_000:
                pipe.execute()
        pipe.execute()

    def scans() -> int:
        return int(client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))

    policy = load_policy()
    targets = [policy.target("agent_info.agent_state"), policy.target("agent_info.agent_sessions")]
    sels = [TenantSelection(t) for t in terminated]
    old = old_mod.RedisStore(redis_conn_id="bench_redis")
    new = RedisStore(redis_conn_id="bench_redis")
    out: dict[str, dict[str, object]] = {}

    def step(name: str, fn) -> object:
        before, started = scans(), time.monotonic()
        value = fn()
        out[name] = {"seconds": round(time.monotonic() - started, 2), "scan_calls": scans() - before}
        return value

    seed()
    print(f"{client.dbsize()} keys, {TENANTS} tenants, {TERMINATED} terminated, 2 targets", flush=True)
    old_plan = step("old plan", lambda: [[old.count(t, s) for s in sels] for t in targets])
    new_plan = step("new plan", lambda: [new.count_each(t, sels) for t in targets])
    assert old_plan == new_plan, (old_plan, new_plan)
    old_del = step("old purge", lambda: [[(old.count(t, s), old.purge(t, s).deleted)[1] for s in sels] for t in targets])
    old_verify = step("old verify", lambda: [[old.verify(t, s) for s in sels] for t in targets])
    seed()
    new_del = step("new purge", lambda: [(new.count_claimed(t, sels), [r.deleted for r in new.purge_each(t, sels)])[1] for t in targets])
    new_verify = step("new verify", lambda: [new.verify_each(t, sels) for t in targets])
    assert old_del == new_del and old_verify == new_verify == [[0] * TERMINATED] * 2
    assert client.dbsize() == len(tenants) * agents * 8 - sum(map(sum, new_del))
    print(f"deleted {sum(map(sum, new_del))} keys (same per tenant in both)")
    for s in ("plan", "purge", "verify"):
        o, n = out[f"old {s}"], out[f"new {s}"]
        print(f"{s:7s} old {o['seconds']:7.2f} s {o['scan_calls']:6d} SCANs | one pass {n['seconds']:6.2f} s "
              f"{n['scan_calls']:5d} SCANs | {o['seconds'] / max(n['seconds'], 1e-3):5.1f}x")
    tot_o = sum(out[f"old {s}"]["seconds"] for s in ("plan", "purge", "verify"))
    tot_n = sum(out[f"new {s}"]["seconds"] for s in ("plan", "purge", "verify"))
    print(f"total   old {tot_o:7.2f} s | one pass {tot_n:6.2f} s | {tot_o / tot_n:5.1f}x")
finally:
    os.kill(proc.pid, 15); proc.wait(10); shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(old_source.parent, ignore_errors=True)

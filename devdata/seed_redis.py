"""Redis: agent profiles and statuses, sessions, and keys no policy target names.

``cc:{tenant}:agent:{agent}:profile`` (hash: name, email) and ``:status``,
``cc:{tenant}:session:{agent}:{session}``, and ``cc:{tenant}:queue:{name}`` and
``cc:{tenant}:ivr:menu``, which a purge must never touch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from devdata.report import SeedReport, store_report
from devdata.world import SeedConfig, build_world, named_rng, span
from include.retention.policy import Policy, RedisTarget, load_policy
from include.retention.timeutil import UTC

log = logging.getLogger(__name__)

QUEUES = ("inbound", "vip", "callback")
AGENT_STATUSES = ("idle", "busy", "after_call_work", "offline")


def _redis_target(policy: Policy, subject_text: str) -> RedisTarget:
    for target in policy.targets:
        if isinstance(target, RedisTarget) and target.key is not None and subject_text in target.key.text:
            return target
    raise LookupError(f"the policy has no Redis target with {subject_text!r} in its key")


def queue_key(tenant: str, name: str) -> str:
    """A queue key: no policy target names it, so no purge may ever delete it."""
    return f"cc:{tenant}:queue:{name}"


def seed_redis(config: SeedConfig, *, redis_conn_id: str = "retention_redis", policy: Policy | None = None) -> SeedReport:
    """Agent profiles and statuses, sessions, and queue and IVR keys that no target names."""
    from airflow.providers.redis.hooks.redis import RedisHook

    policy = policy or load_policy()
    started = time.monotonic()
    world = build_world(config, policy)
    state, sessions = _redis_target(policy, "{tenant}:agent:"), _redis_target(policy, "{tenant}:session:")
    client = RedisHook(redis_conn_id=redis_conn_id).get_conn()
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    _, end_day = span(config)
    pipe = client.pipeline(transaction=False)
    for tenant in world:
        t = tenant.tenant_id
        rng = named_rng(config, "redis", t)
        for agent in tenant.agents:
            prefix = state.key.render(tenant=t, agent=agent.person_id)  # type: ignore[union-attr]
            pipe.hset(prefix + "profile", mapping={"name": agent.name, "email": agent.email, "role": agent.role})
            pipe.set(prefix + "status", rng.choice(AGENT_STATUSES))
            tally[t][state.qualified_name] += 2
            session_prefix = sessions.key.render(tenant=t, agent=agent.person_id)  # type: ignore[union-attr]
            for _ in range(config.sessions_per_agent):
                login = datetime.combine(end_day, datetime.min.time(), UTC) - timedelta(minutes=rng.randint(5, 60 * 48))
                pipe.hset(f"{session_prefix}{rng.getrandbits(64):016x}",
                          mapping={"login_at": login.isoformat(), "client": rng.choice(("web", "desktop", "mobile"))})
                tally[t][sessions.qualified_name] += 1
        for name in QUEUES:
            pipe.delete(queue_key(t, name))
            pipe.rpush(queue_key(t, name), *[f"{rng.getrandbits(128):032x}" for _ in range(rng.randint(1, 5))])
            tally[t]["redis.other_keys"] += 1
        pipe.hset(f"cc:{t}:ivr:menu", mapping={"1": "sales", "2": "support", "0": "operator"})
        tally[t]["redis.other_keys"] += 1
        if len(pipe) >= 2_000:
            pipe.execute()
    pipe.execute()
    seconds = time.monotonic() - started
    report = store_report(tally, [t.tenant_id for t in world], "redis", seconds)
    log.info("Seeded Redis: %d keys in %.1fs", sum(report.counts.values()), seconds)
    return report

"""Redis: delete a tenant's or a subject's keys with ``SCAN MATCH`` + ``UNLINK``, streaming.

Keys are found with ``SCAN <cursor> MATCH <prefix>* COUNT <scan_count>``, where the prefix is
rendered by the target's key template (``cc:{tenant}:agent:{agent}:``) from validated ids and
then glob-escaped. Every key SCAN returns is parsed again with the template and must carry
exactly the selected tenant (and subject) before it is unlinked, so tenant ``12`` never
touches ``cc:123:...`` and agent ``a1`` never touches ``a10``. Matching keys are unlinked in
batches of ``batch_size`` as they stream in: the full key list is never held in memory, and on
a single server each ``UNLINK`` travels in the same pipeline round trip as the next ``SCAN``.

Counts: ``deleted`` is the sum of ``UNLINK`` replies, so it is exact. ``SCAN`` may return a
key twice when the keyspace is resized during the scan; ``count()`` (and ``planned``) can then
over-count by those repeats, never under-count, and is exact on a keyspace that is not being
resized. ``verify()`` re-scans and must find 0.

Keys carry no date, so there are no dated units and an ``ExpiredSelection`` is refused.

Failures: redis-py retries a lost connection itself (10 attempts, back-off capped at 1 s). An
error that outlives those raises :class:`PartialPurgeError` carrying the number of keys whose
``UNLINK`` was acknowledged; a rerun scans afresh and finishes (UNLINK of a missing key is a
no-op, so nothing is counted twice). A server that restarts between two round trips is
reconnected to by those retries, but a SCAN cursor from before the restart walks a different
hash table (the hash seed is random per start) and would skip keys while the purge reported
success: every scan therefore compares the server's ``run_id`` before and after, and scans
again from the start when it changed (at most ``MAX_SCAN_PASSES`` times, then it raises).

Redis Cluster: keys live on many primaries and ``SCAN`` only walks the node it is sent to.
When the hook returns a :class:`redis.cluster.RedisCluster` (connection extra
``{"cluster": true}``), this module runs the SCAN loop on every primary in turn
(``get_primaries()``, each through its own node client) and deletes through the cluster
client, whose ``unlink`` groups a batch by hash slot and sends one ``UNLINK`` per slot to the
node owning it (keys of a batch may span slots; a single multi-slot ``UNLINK`` would fail with
``CROSSSLOT``). Replicas are never scanned. A resharding during the purge can hide keys
from one node's scan; ``verify()`` (a fresh scan of every primary) catches that and a rerun
finishes the job.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from include.retention.identifiers import Template
from include.retention.policy import RedisTarget
from include.retention.selections import (
    DatedUnit,
    ExpiredSelection,
    Selection,
    SubjectSelection,
    TenantSelection,
)
from include.retention.results import PartialPurgeError, PurgeResult, UnsupportedSelection
from include.retention.stores.base import RetentionStore
from include.retention.stores.progress import Progress

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

DEFAULT_REDIS_CONN_ID = "retention_redis"
DEFAULT_SCAN_COUNT = 1_000
DEFAULT_REDIS_BATCH_SIZE = 1_000
#: Scans of a keyspace that a server restart cut short are redone, this many in all at most.
MAX_SCAN_PASSES = 3

# Redis glob metacharacters (stringmatchlen): * ? [ ] and the escape character itself.
_GLOB_SPECIAL = frozenset("*?[]\\")


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in ``SCAN MATCH``."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


class _KeyCheck:
    """The per-key re-check: the key parses with the template and carries exactly the wanted ids.

    Equivalent to ``template.parse(key)`` followed by comparing the tenant (and subject)
    values, but with the template's regex compiled once and matched on the raw bytes SCAN
    returns: ``Template.regex`` rebuilds its pattern on every call (~12 us a key, most of a
    purge's time on a million keys), and decoding each key costs as much again. Redis
    templates carry no date (the policy refuses one), so a match's groups are exactly what
    ``parse`` returns; the identifier patterns are ASCII-only, so the bytes regex accepts
    exactly the UTF-8 keys the text regex accepts. Holds no personal data in its repr.
    """

    def __init__(self, template: Template, wanted: Mapping[str, str], scope: str) -> None:
        if template.date_placeholder is not None:
            raise UnsupportedSelection(f"Redis key template {template.text!r} must not carry a date")
        text_pattern = template.regex.pattern
        self._text = re.compile(text_pattern)
        self._bytes = re.compile(text_pattern.encode("ascii"))
        self._names = tuple(wanted)
        self._values_text = tuple(wanted.values())
        self._values_bytes = tuple(value.encode("ascii") for value in wanted.values())
        self.scope = scope  # for log lines: "tenant 12" or "one agent of tenant 12"

    def __repr__(self) -> str:
        return f"_KeyCheck(scope={self.scope!r})"

    def accepts(self, key: bytes | str) -> bool:
        return bool(self.select([key]))

    def select(self, keys: list[Any]) -> list[Any]:
        """The keys of one SCAN reply that pass the re-check, raw as the server sent them."""
        if not keys:
            return []
        if isinstance(keys[0], bytes):  # a str among bytes makes match() raise: loud, never lax
            match, values = self._bytes.match, self._values_bytes
        else:
            match, values = self._text.match, self._values_text
        names = self._names
        if len(names) == 1:
            name, value = names[0], values[0]
            return [key for key in keys if (found := match(key)) is not None and found.group(name) == value]
        return [key for key in keys if (found := match(key)) is not None and found.group(*names) == values]


@dataclass(frozen=True)
class _Match:
    """What to scan for and how to re-check each key. Its repr holds no personal data."""

    pattern: str = field(repr=False)  # may hold a subject id
    check: _KeyCheck

    @property
    def scope(self) -> str:
        return self.check.scope


class RedisStore(RetentionStore[RedisTarget]):
    """Finds, counts, purges and verifies the keys of a Redis target.

    :param redis_conn_id: Airflow connection for :class:`RedisHook`; the db number comes
        from the connection extra (``{"db": 2}``), cluster mode from ``{"cluster": true}``.
    :param scan_count: the ``COUNT`` hint of each ``SCAN`` (keys examined per round trip).
    :param batch_size: keys per ``UNLINK``.
    """

    store = "redis"

    def __init__(
        self,
        *,
        redis_conn_id: str = DEFAULT_REDIS_CONN_ID,
        scan_count: int = DEFAULT_SCAN_COUNT,
        batch_size: int = DEFAULT_REDIS_BATCH_SIZE,
    ) -> None:
        super().__init__(batch_size=batch_size)
        if not 1 <= scan_count <= 1_000_000:
            raise ValueError(f"scan_count must be between 1 and 1000000, got {scan_count}")
        self.redis_conn_id = redis_conn_id
        self.scan_count = scan_count
        self._client: Any = None

    # ------------------------------------------------------------------ client

    @property
    def client(self) -> Redis:
        """The Redis (or RedisCluster) client from the provider hook, created on first use."""
        if self._client is None:
            from airflow.providers.redis.hooks.redis import RedisHook

            self._client = RedisHook(redis_conn_id=self.redis_conn_id).get_conn()
        return self._client

    def _is_cluster(self) -> bool:
        from redis.cluster import RedisCluster

        return isinstance(self.client, RedisCluster)

    def _scan_nodes(self) -> list[Any]:
        """One client per node whose keyspace must be scanned: the server, or every primary."""
        client = self.client
        if self._is_cluster():
            return [client.get_redis_connection(node) for node in client.get_primaries()]
        return [client]

    # ------------------------------------------------------------------ selections

    def _match(self, target: RedisTarget, selection: Selection) -> _Match:
        template = target.key
        if template is None:
            raise UnsupportedSelection(f"{target.qualified_name} has no key template")
        if isinstance(selection, ExpiredSelection):
            raise UnsupportedSelection(
                f"{target.qualified_name}: Redis keys carry no date, so nothing expires by age; "
                "they go with a termination or a deletion request"
            )
        if isinstance(selection, TenantSelection):
            tenant = selection.tenant
            prefix = template.prefix(tenant=tenant)  # validates the tenant id
            check = _KeyCheck(template, {"tenant": tenant}, f"tenant {tenant}")
            return _Match(glob_escape(prefix) + "*", check)
        if isinstance(selection, SubjectSelection):
            subject_type, tenant = selection.subject_type, selection.tenant
            if subject_type not in template.subject_types:
                raise UnsupportedSelection(
                    f"{target.qualified_name}: key template {template.text!r} has no {{{subject_type}}} placeholder"
                )
            wanted = {"tenant": tenant, subject_type: selection.subject_id}
            prefix = template.prefix(**wanted)  # validates both ids
            check = _KeyCheck(template, wanted, f"one {subject_type} of tenant {tenant}")
            return _Match(glob_escape(prefix) + "*", check)
        raise UnsupportedSelection(f"unknown selection {type(selection).__name__}")

    def _scan(self, node: Any, match: _Match) -> Iterator[bytes | str]:
        """Keys on one node that match the pattern and pass the template re-check."""
        cursor = 0
        while True:
            cursor, keys = node.scan(cursor=cursor, match=match.pattern, count=self.scan_count)
            yield from match.check.select(keys)
            if int(cursor) == 0:
                return

    # ------------------------------------------------------------------ verbs

    def dated_units(self, target: RedisTarget) -> list[DatedUnit]:
        """Redis keys carry no date: there are no dated units."""
        return []

    def count(self, target: RedisTarget, selection: Selection) -> int:
        """Keys the selection matches now (a SCAN of every node, each key re-checked)."""
        match = self._match(target, selection)
        for _ in range(MAX_SCAN_PASSES):
            runs = self._server_runs()
            n = sum(1 for node in self._scan_nodes() for _ in self._scan(node, match))
            if self._server_runs() == runs:
                return n
            log.warning("Redis restarted during the count of %s; counting again", target.qualified_name)
        raise RuntimeError(f"Redis restarted during each of {MAX_SCAN_PASSES} counts of {target.qualified_name}")

    def _server_runs(self) -> tuple[str, ...]:
        """The ``run_id`` of every scanned node: a new one means that server restarted."""
        return tuple(str(node.info("server")["run_id"]) for node in self._scan_nodes())

    def purge(self, target: RedisTarget, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        """Unlink the selection's keys in batches as SCAN streams them in; a dry run only counts."""
        match = self._match(target, selection)
        started = time.monotonic()
        if dry_run:
            planned = self.count(target, selection)
            log.info("Dry run: %d keys of %s for %s would be unlinked", planned, target.qualified_name, match.scope)
            return PurgeResult(
                target=target.qualified_name,
                store=self.store,
                method="scan+unlink",
                planned=planned,
                deleted=0,
                dry_run=True,
                seconds=time.monotonic() - started,
                details={"scan_count": self.scan_count},
            )
        import redis

        progress = Progress()
        try:
            for _ in range(MAX_SCAN_PASSES):
                runs = self._server_runs()
                if self._is_cluster():
                    for node in self._scan_nodes():
                        self._purge_cluster_node(node, match, progress)
                else:
                    self._purge_single(self.client, match, progress)
                if self._server_runs() == runs:
                    break
                # Every key matched so far is unlinked; a fresh scan finds only the rest.
                log.warning("Redis restarted during the purge of %s after %d keys; scanning again from the start",
                            target.qualified_name, progress.deleted)
            else:
                raise PartialPurgeError(target.qualified_name, progress.deleted,
                                        f"Redis restarted during each of {MAX_SCAN_PASSES} scans")
        except (redis.RedisError, OSError) as exc:
            log.error(
                "Purge of %s for %s failed after unlinking %d keys in %d batches: %s",
                target.qualified_name,
                match.scope,
                progress.deleted,
                progress.batches,
                type(exc).__name__,
            )
            raise PartialPurgeError(target.qualified_name, progress.deleted, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.monotonic() - started
        log.info(
            "Unlinked %d of %d matched keys of %s for %s in %d batches (%.2fs)",
            progress.deleted,
            progress.matched,
            target.qualified_name,
            match.scope,
            progress.batches,
            seconds,
        )
        return PurgeResult(
            target=target.qualified_name,
            store=self.store,
            method="scan+unlink",
            planned=progress.matched,
            deleted=progress.deleted,
            batches=progress.batches,
            seconds=seconds,
            details={"scan_count": self.scan_count, "scans": progress.requests},
        )

    # ------------------------------------------------------------------ purge loops

    def _purge_single(self, client: Any, match: _Match, progress: Progress) -> None:
        """One server: each round trip carries the full UNLINK batches and the next SCAN."""
        cursor: int | None = 0
        pending: list[bytes | str] = []
        unlinks = 0
        while True:
            pipe = client.pipeline(transaction=False)
            unlinks = 0
            while len(pending) >= self.batch_size:
                pipe.unlink(*pending[: self.batch_size])
                del pending[: self.batch_size]
                unlinks += 1
            if cursor is not None:
                pipe.scan(cursor=cursor, match=match.pattern, count=self.scan_count)
            elif pending:  # scan finished: the last, short batch
                pipe.unlink(*pending)
                pending = []
                unlinks += 1
            if not len(pipe):
                return
            replies = pipe.execute()
            for reply in replies[:unlinks]:
                progress.deleted += int(reply)
                progress.batches += 1
            if cursor is not None:
                cursor, keys = replies[unlinks]
                progress.requests += 1
                selected = match.check.select(keys)
                pending.extend(selected)
                progress.matched += len(selected)
                if int(cursor) == 0:
                    cursor = None

    def _purge_cluster_node(self, node: Any, match: _Match, progress: Progress) -> None:
        """One primary of a cluster: SCAN on the node, UNLINK through the slot-aware client."""
        pending: list[bytes | str] = []
        cursor = 0
        while True:
            cursor, keys = node.scan(cursor=cursor, match=match.pattern, count=self.scan_count)
            progress.requests += 1
            selected = match.check.select(keys)
            pending.extend(selected)
            progress.matched += len(selected)
            done = int(cursor) == 0
            while len(pending) >= self.batch_size or (done and pending):
                batch = pending[: self.batch_size]
                del pending[: self.batch_size]
                progress.deleted += int(self.client.unlink(*batch))
                progress.batches += 1
            if done:
                return


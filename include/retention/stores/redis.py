"""Redis: delete tenants' and subjects' keys with ``SCAN MATCH`` + ``UNLINK``, one pass per target.

One pass serves every selection of a target: ``count_each``, ``count_claimed`` and
``purge_each`` take all of a run's terminated tenants and deleted subjects of the target and
walk its keyspace once with ``SCAN <cursor> MATCH <prefix>* COUNT <scan_count>``. The prefix
is the longest literal start all selected keys share, rendered by the target's key template
(``cc:{tenant}:agent:{agent}:``) from validated ids and glob-escaped: ``cc:*`` for many
tenants, ``cc:12:agent:*`` for one. Every key SCAN returns is parsed once with the template
and its ids looked up among the wanted ones (``redis_keys.KeyClaims``) before it is
unlinked, so tenant ``12`` never touches ``cc:123:...`` and agent ``a1`` never touches
``a10``. Matching keys are unlinked in batches of ``batch_size`` as they stream in, each
batch holding keys of one selection only (its ``UNLINK`` reply is then that selection's
exact count): the key list is never held in memory, and on a single server each ``UNLINK``
travels in the same pipeline round trip as the next ``SCAN``. ``count``, ``purge`` and
``verify`` of one selection are a pass over that selection alone.

Counts: ``deleted`` is the sum of ``UNLINK`` replies, so it is exact per selection. A key two
selections want (a deleted agent of a terminated tenant) is unlinked for the first of them;
``count_claimed`` counts the same way, so it says what a ``purge_each`` will delete for each,
exactly what purging them one after another would. ``count_each`` counts each selection on
its own (a dry run, ``verify``). ``SCAN`` may return a key twice when the keyspace is resized
during the scan; counts (and ``planned``) can then over-count by those repeats, never
under-count, and are exact on a keyspace that is not being resized. ``verify`` re-scans and
must find 0 for each.

Keys carry no date, so there are no dated units and an ``ExpiredSelection`` is refused.

Failures: redis-py retries a lost connection itself (10 attempts, back-off capped at 1 s). An
error that outlives those raises :class:`PartialPurgesError` carrying, per selection, the
number of keys whose ``UNLINK`` was acknowledged; a rerun scans afresh and finishes (UNLINK
of a missing key is a no-op, so nothing is counted twice). A server that restarts between two
round trips is reconnected to by those retries, but a SCAN cursor from before the restart
walks a different hash table (the hash seed is random per start) and would skip keys while
the purge reported success: every pass therefore compares the server's ``run_id`` before and
after, and scans again from the start when it changed (at most ``MAX_SCAN_PASSES`` times,
then it raises).

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
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from include.retention.policy import RedisTarget
from include.retention.results import PartialPurgesError, PurgeResult, UnsupportedSelection
from include.retention.selections import DatedUnit, Selection
from include.retention.stores.base import RetentionStore
from include.retention.stores.progress import Progress
from include.retention.stores.redis_keys import KeyClaims, glob_escape

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["DEFAULT_REDIS_CONN_ID", "MAX_SCAN_PASSES", "RedisStore", "glob_escape"]

log = logging.getLogger(__name__)

DEFAULT_REDIS_CONN_ID = "retention_redis"
DEFAULT_SCAN_COUNT = 1_000
DEFAULT_REDIS_BATCH_SIZE = 1_000
#: Scans of a keyspace that a server restart cut short are redone, this many in all at most.
MAX_SCAN_PASSES = 3

Tally = Callable[[Sequence[Any], list[int]], None]


class _Pass:
    """The counters of one purge pass: per selection, and the SCAN replies they shared."""

    def __init__(self, size: int) -> None:
        self.each = [Progress() for _ in range(size)]
        self.scans = 0
        self.pending: list[list[Any]] = [[] for _ in range(size)]

    @property
    def deleted(self) -> list[int]:
        return [p.deleted for p in self.each]

    def take(self, claimed: list[tuple[int, Any]]) -> None:
        for index, key in claimed:
            self.pending[index].append(key)
            self.each[index].matched += 1

    def full_batches(self, size: int, *, last: bool) -> Iterator[tuple[int, list[Any]]]:
        """(selection, keys) of each UNLINK due now: full batches, and with ``last`` the short rest."""
        for index, pending in enumerate(self.pending):
            while len(pending) >= size or (last and pending):
                batch = pending[:size]
                del pending[:size]
                yield index, batch

    def unlinked(self, index: int, reply: Any) -> None:
        self.each[index].deleted += int(reply)
        self.each[index].batches += 1


class RedisStore(RetentionStore[RedisTarget]):
    """Finds, counts, purges and verifies the keys of a Redis target, one SCAN pass for many selections.

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

    def _server_runs(self) -> tuple[str, ...]:
        """The ``run_id`` of every scanned node: a new one means that server restarted."""
        return tuple(str(node.info("server")["run_id"]) for node in self._scan_nodes())

    # ------------------------------------------------------------------ selections

    def _claims(self, target: RedisTarget, selections: Sequence[Selection]) -> KeyClaims:
        """The selections checked (before any I/O) and ready to match keys against."""
        if target.key is None:
            raise UnsupportedSelection(f"{target.qualified_name} has no key template")
        return KeyClaims(target.key, selections, target.qualified_name)

    def _replies(self, node: Any, pattern: str) -> Iterator[list[Any]]:
        """The key lists of one SCAN pass over one node."""
        cursor = 0
        while True:
            cursor, keys = node.scan(cursor=cursor, match=pattern, count=self.scan_count)
            yield keys
            if int(cursor) == 0:
                return

    def _tally(self, target: RedisTarget, claims: KeyClaims, tally: Tally) -> list[int]:
        """Per selection, what ``tally`` counts in one pass over every node (again after a restart)."""
        if not claims.size:
            return []
        for _ in range(MAX_SCAN_PASSES):
            runs = self._server_runs()
            counts = [0] * claims.size
            for node in self._scan_nodes():
                for keys in self._replies(node, claims.pattern):
                    tally(keys, counts)
            if self._server_runs() == runs:
                return counts
            log.warning("Redis restarted during the count of %s; counting again", target.qualified_name)
        raise RuntimeError(f"Redis restarted during each of {MAX_SCAN_PASSES} counts of {target.qualified_name}")

    # ------------------------------------------------------------------ verbs

    def dated_units(self, target: RedisTarget) -> list[DatedUnit]:
        """Redis keys carry no date: there are no dated units."""
        return []

    def count(self, target: RedisTarget, selection: Selection) -> int:
        """Keys the selection matches now (a SCAN of every node, each key re-checked)."""
        return self.count_each(target, [selection])[0]

    def count_each(self, target: RedisTarget, selections: Sequence[Selection]) -> list[int]:
        """Keys each selection matches now, in one pass (a key two selections want counts in both)."""
        claims = self._claims(target, selections)
        return self._tally(target, claims, claims.count_into)

    def verify_each(self, target: RedisTarget, selections: Sequence[Selection]) -> list[int]:
        """An independent re-count of each selection, in one pass; 0 means it is gone."""
        return self.count_each(target, selections)

    def count_claimed(self, target: RedisTarget, selections: Sequence[Selection]) -> list[int]:
        """Keys each selection would delete in a ``purge_each`` of them now: a key two selections
        want counts for the first of them only."""
        claims = self._claims(target, selections)
        return self._tally(target, claims, claims.count_claimed_into)

    def purge(self, target: RedisTarget, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        """Unlink the selection's keys in batches as SCAN streams them in; a dry run only counts."""
        return self.purge_each(target, [selection], dry_run=dry_run)[0]

    def purge_each(self, target: RedisTarget, selections: Sequence[Selection], *,
                   dry_run: bool = False) -> list[PurgeResult]:
        """Unlink every selection's keys in one pass, a result per selection; a dry run only counts each.

        Raises :class:`PartialPurgesError` (what each selection lost so far) on failure part-way.
        """
        claims = self._claims(target, selections)
        started = time.monotonic()
        if dry_run:
            planned = self._tally(target, claims, claims.count_into)
            log.info("Dry run: %d keys of %s for %d selection(s) would be unlinked (one pass)", sum(planned),
                     target.qualified_name, claims.size)
            seconds = time.monotonic() - started
            return [self._result(target, n, 0, 0, seconds, claims.size, 0, dry_run=True) for n in planned]
        if not claims.size:
            return []
        import redis

        work = _Pass(claims.size)
        try:
            for _ in range(MAX_SCAN_PASSES):
                runs = self._server_runs()
                if self._is_cluster():
                    for node in self._scan_nodes():
                        self._purge_cluster_node(node, claims, work)
                else:
                    self._purge_single(self.client, claims, work)
                if self._server_runs() == runs:
                    break
                # Every key matched so far is unlinked; a fresh scan finds only the rest.
                log.warning("Redis restarted during the purge of %s after %d keys; scanning again from the start",
                            target.qualified_name, sum(work.deleted))
            else:
                raise PartialPurgesError(target.qualified_name, work.deleted,
                                         f"Redis restarted during each of {MAX_SCAN_PASSES} scans")
        except (redis.RedisError, OSError) as exc:
            log.error("Purge of %s for %d selection(s) (%s) failed after unlinking %d keys: %s",
                      target.qualified_name, claims.size, _scopes(claims), sum(work.deleted), type(exc).__name__)
            raise PartialPurgesError(target.qualified_name, work.deleted, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.monotonic() - started
        log.info("Unlinked %d of %d matched keys of %s for %d selection(s) (%s) in one pass of %d SCANs (%.2fs)",
                 sum(work.deleted), sum(p.matched for p in work.each), target.qualified_name, claims.size,
                 _scopes(claims), work.scans, seconds)
        return [self._result(target, p.matched, p.deleted, p.batches, seconds, claims.size, work.scans)
                for p in work.each]

    def _result(self, target: RedisTarget, planned: int, deleted: int, batches: int, seconds: float,
                selections: int, scans: int, *, dry_run: bool = False) -> PurgeResult:
        details: dict[str, object] = {"scan_count": self.scan_count}
        if not dry_run:
            details["scans"] = scans  # SCAN replies of the pass, shared by its selections
        if selections > 1:
            details["pass_selections"] = selections
        return PurgeResult(target=target.qualified_name, store=self.store, method="scan+unlink", planned=planned,
                           deleted=deleted, batches=batches, dry_run=dry_run, seconds=seconds, details=details)

    # ------------------------------------------------------------------ purge loops

    def _purge_single(self, client: Any, claims: KeyClaims, work: _Pass) -> None:
        """One server: each round trip carries the UNLINK batches due and the next SCAN."""
        cursor: int | None = 0
        while True:
            pipe = client.pipeline(transaction=False)
            owners = []
            for index, batch in work.full_batches(self.batch_size, last=cursor is None):
                pipe.unlink(*batch)
                owners.append(index)
            if cursor is not None:
                pipe.scan(cursor=cursor, match=claims.pattern, count=self.scan_count)
            if not len(pipe):
                return
            replies = pipe.execute()
            for index, reply in zip(owners, replies):
                work.unlinked(index, reply)
            if cursor is not None:
                cursor, keys = replies[len(owners)]
                work.scans += 1
                work.take(claims.claim(keys))
                if int(cursor) == 0:
                    cursor = None

    def _purge_cluster_node(self, node: Any, claims: KeyClaims, work: _Pass) -> None:
        """One primary of a cluster: SCAN on the node, UNLINK through the slot-aware client."""
        for keys in self._replies(node, claims.pattern):
            work.scans += 1
            work.take(claims.claim(keys))
            for index, batch in work.full_batches(self.batch_size, last=False):
                work.unlinked(index, self.client.unlink(*batch))
        for index, batch in work.full_batches(self.batch_size, last=True):
            work.unlinked(index, self.client.unlink(*batch))


def _scopes(claims: KeyClaims, shown: int = 5) -> str:
    """The first few selections' scopes for a log line (tenant ids only, never a subject id)."""
    more = claims.size - shown
    return ", ".join(claims.scopes[:shown]) + (f" and {more} more" if more > 0 else "")

"""The audit ledger: one row per purge attempt, dry or real, ok or failed. No personal data.

A subject appears only as its keyed hash (``describe_selection``); error messages are
scrubbed of the subject ids the selection carries, of E.164 numbers and of e-mail
addresses before they are stored.

A real purge goes through ``audited_purge``, which writes its row as ``running`` before
anything is deleted. A process killed mid-purge (kill -9, OOM, a lost worker) leaves that
row behind; the next attempt of the same purge (same run, target and selection: the same
``attempt_key``) closes it as ``interrupted`` and settles its ``deleted`` from counts:
the run's cut-off is fixed, so what an attempt deleted is what the selection matched
when it started minus what it matches when the next attempt starts. The same settling
corrects a ``failed`` attempt whose last request was applied but never answered.
Each insert and each of these updates is chained (``ledger/chain.py``) in its transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

from include.retention.ledger.chain import chained
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.policy import Target
from include.retention.redaction import scrub, subject_ids
from include.retention.timeutil import to_naive_utc, wall_clock
from include.retention.selections import ExpiredSelection, Selection, describe_selection
from include.retention.results import PartialPurgeError, PartialPurgesError, PurgeResult

log = logging.getLogger(__name__)

Outcome = Literal["ok", "failed", "refused"]


@dataclass(frozen=True)
class Why:
    """Why a purge ran, for its audit row: the rule that selected the records and what it
    kept out (``reasons.py`` documents both), and who approved it past the breaker."""

    rule: Mapping[str, Any] | None = None
    withheld: Mapping[str, Any] | None = None
    approved_by: str | None = None

    def columns(self, selection: Selection) -> dict[str, Any]:
        def doc(value: Mapping[str, Any] | None) -> str | None:
            return scrub(json.dumps(value, sort_keys=True, default=str), selection) if value else None

        return {"rule": doc(self.rule), "withheld": doc(self.withheld),
                "approved_by": scrub(self.approved_by, selection) if self.approved_by else None}


#: How long a new attempt waits for an earlier attempt of the same purge that still runs.
ATTEMPT_LOCK_SECONDS = 30
#: How long a purge waits for another run's purge of the same target and tenant: as long as
#: such a purge may take (a large tenant's termination), and below the tasks' timeouts.
SCOPE_LOCK_SECONDS = 3600


_COLUMNS = (
    "run_id", "dag_id", "task_id", "category", "target", "store", "selection_kind", "tenant_id", "subject_type",
    "subject_hash", "cutoff", "units_count", "planned", "deleted", "verified_remaining", "method", "dry_run",
    "override_reason", "duration_s", "outcome", "error", "details", "started_at", "finished_at", "rule", "withheld",
    "approved_by",
)


def record_purge(
    ledger_conn_id: str = LEDGER_CONN_ID,
    *,
    run_id: str,
    dag_id: str,
    task_id: str,
    target: Target,
    selection: Selection,
    result: PurgeResult | None = None,
    error: BaseException | None = None,
    started_at: datetime,
    finished_at: datetime,
    override_reason: str | None = None,
    outcome: Outcome | None = None,
    dry_run: bool = False,
    audit_id: int | None = None,
    why: Why | None = None,
) -> int:
    """Write one audit row for one purge of one selection in one target; returns its id.

    :param result: the purge's result (outcome ``ok``), or
    :param error: the exception it raised (outcome ``failed``; a PartialPurgeError's
        deleted-so-far is recorded). Give exactly one of the two.
    :param outcome: ``refused`` for a purge the package declined to run (give ``error``
        with the reason).
    :param dry_run: for a failed purge, whether it was a dry run (a result says it itself).
    :param audit_id: complete this ``running`` row of ``audited_purge`` instead of adding
        one; its ``planned`` (the count when the attempt started) is kept when the error
        says none.
    :param why: the rule that selected the records, what was kept out, who approved.
    """
    if (result is None) == (error is None):
        raise ValueError("give exactly one of result or error")
    description = _checked_description(selection)
    if outcome is None:
        outcome = "ok" if result is not None else "failed"
    planned: int | None = None
    deleted = 0
    remaining: int | None = None
    method = "n/a"
    details: dict[str, object] = {"selection": description}
    error_text: str | None = None
    if result is not None:
        planned, deleted, remaining, method = result.planned, result.deleted, result.remaining, result.method
        dry_run = result.dry_run
        details["batches"] = result.batches
        if result.details:
            details["store"] = result.details
    else:
        assert error is not None
        if isinstance(error, PartialPurgeError):
            deleted = error.deleted
        error_text = scrub(f"{type(error).__name__}: {error}", selection)

    values = _row(run_id, dag_id, task_id, target, selection, description, planned=planned, deleted=deleted,
                  remaining=remaining, method=method, dry_run=dry_run, override_reason=override_reason,
                  outcome=outcome, error_text=error_text, details=details, started_at=started_at,
                  finished_at=finished_at, why=why)
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        with chained(cur, "purge_audit") as chain:
            if audit_id is None:
                cur.execute(
                    f"INSERT INTO purge_audit ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})",
                    tuple(values[c] for c in _COLUMNS),
                )
                audit_id = int(cur.lastrowid)
                chain.link("purge_audit", audit_id)
            else:
                assignments = ", ".join(f"{c} = COALESCE(%s, {c})" if c == "planned" else f"{c} = %s"
                                        for c in _COLUMNS)
                cur.execute(f"UPDATE purge_audit SET {assignments} WHERE id = %s AND outcome = 'running'",
                            (*(values[c] for c in _COLUMNS), audit_id))
                if cur.rowcount != 1:
                    raise RuntimeError(f"audit row {audit_id} is no longer a running attempt; it was settled meanwhile")
                chain.link("purge_audit", audit_id, "settle")
    log.info("Audit %d: %s %s of %s: %s, deleted %d%s", audit_id, "dry run" if dry_run else "purge",
             selection.kind, target.qualified_name, outcome, deleted, f" of {planned}" if planned is not None else "")
    return audit_id


def _checked_description(selection: Selection) -> dict[str, object]:
    description = describe_selection(selection)
    serialised = json.dumps(description, sort_keys=True, default=str)
    if "subject_id" in description or any(s and s in serialised for s in subject_ids(selection) if len(s) >= 3):
        raise ValueError("refusing to audit a selection description that carries a subject id")
    return description


def _row(
    run_id: str, dag_id: str, task_id: str, target: Target, selection: Selection, description: dict[str, object], *,
    planned: int | None, deleted: int, remaining: int | None, method: str, dry_run: bool,
    override_reason: str | None, outcome: str, error_text: str | None, details: dict[str, object],
    started_at: datetime, finished_at: datetime, why: Why | None,
) -> dict[str, Any]:
    """Column values of one audit row."""
    return {
        "run_id": run_id, "dag_id": dag_id, "task_id": task_id, "category": target.category,
        "target": target.name, "store": target.store, "selection_kind": selection.kind,
        "tenant_id": description.get("tenant"), "subject_type": description.get("subject_type"),
        "subject_hash": description.get("subject_hash"),
        "cutoff": to_naive_utc(selection.before) if isinstance(selection, ExpiredSelection) else None,
        "units_count": len(selection.units) if isinstance(selection, ExpiredSelection) else 0,
        "planned": planned, "deleted": deleted, "verified_remaining": remaining, "method": method,
        "dry_run": dry_run, "override_reason": scrub(override_reason, selection) if override_reason else None,
        "duration_s": max(0.0, (finished_at - started_at).total_seconds()), "outcome": outcome,
        "error": error_text, "details": scrub(json.dumps(details, sort_keys=True, default=str), selection),
        "started_at": to_naive_utc(started_at), "finished_at": to_naive_utc(finished_at),
        **(why or Why()).columns(selection),
    }


# --------------------------------------------------------------------------- crash-safe attempts


class AttemptInProgress(RuntimeError):
    """Another attempt of the same purge still runs (it holds the attempt's lock)."""


def attempt_key(run_id: str, target: Target, selection: Selection, extra: str = "") -> str:
    """Names one purge of one run: the same run, target and selection give the same key.

    :param extra: what else tells two purges of the run apart (an explicit key list's name).
    """
    doc = json.dumps([run_id, target.qualified_name, describe_selection(selection), extra], sort_keys=True,
                     default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def scope_key(target: Target, selection: Selection) -> str:
    """Names what a purge can touch across runs: its target and its tenant (every tenant for a
    selection without one). Two runs' purges of one scope may select the same records."""
    tenant = getattr(selection, "tenant", None)
    return hashlib.sha256(f"{target.qualified_name}\x00{tenant or '*'}".encode()).hexdigest()


@contextmanager
def _named_lock(cur: Any, name: str, seconds: float, refusal: str) -> Iterator[None]:
    """Hold a named lock of the ledger server; ``AttemptInProgress(refusal)`` if not had in time.

    The server releases it when the holding connection ends, also when its process is killed.
    """
    cur.execute("SELECT GET_LOCK(%s, %s)", (name, seconds))
    (locked,) = cur.fetchone()
    if locked != 1:
        raise AttemptInProgress(f"{refusal} (lock {name} held for {seconds:g} s); nothing was deleted by this one")
    try:
        yield
    finally:
        try:
            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
            cur.fetchall()
        except Exception:  # noqa: BLE001 - closing the connection releases it too; keep the purge's error
            log.warning("Could not release %s; it goes with the connection", name)


@contextmanager
def _attempt_lock(ledger_conn_id: str, key: str, scope: str) -> Iterator[None]:
    """Hold, for the whole purge, the attempt's lock and then the scope's (lock names are at
    most 64 characters; the only lock two purges share is a scope's, so no cycle can form).

    - The attempt's: an attempt that finds it free knows every earlier attempt of the same
      purge is dead; a live one makes it fail after ``ATTEMPT_LOCK_SECONDS``.
    - The scope's: another run's purge of the same target and tenant (a backfill beside the
      resumed schedule, a request beside the daily run, on another worker) finishes first, so
      that each counts what it deleted itself. Object stores and index deletes report what
      they were asked to delete, not what existed: without it both would count the same
      objects. A purge waits for it up to ``SCOPE_LOCK_SECONDS``.
    """
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        with _named_lock(cur, f"retention_purge_{key[:40]}", ATTEMPT_LOCK_SECONDS,
                         "another attempt of this purge still runs"), \
                _named_lock(cur, f"retention_scope_{scope[:40]}", SCOPE_LOCK_SECONDS,
                            "another run's purge of the same target and tenant still runs"):
            yield


@contextmanager
def _attempt_locks(ledger_conn_id: str, keys: Sequence[str], scopes: Sequence[str]) -> Iterator[None]:
    """``_attempt_lock`` for the purges of one pass: every attempt's lock, then every scope's.

    Each kind in sorted order (the same names once), so two passes that share scopes take them
    in the same order and cannot wait for each other in a cycle; one connection holds them all.
    """
    with connect(ledger_conn_id) as conn, ExitStack() as held:
        cur = plain_cursor(conn)
        for key in sorted(set(keys)):
            held.enter_context(_named_lock(cur, f"retention_purge_{key[:40]}", ATTEMPT_LOCK_SECONDS,
                                           "another attempt of this purge still runs"))
        for scope in sorted(set(scopes)):
            held.enter_context(_named_lock(cur, f"retention_scope_{scope[:40]}", SCOPE_LOCK_SECONDS,
                                           "another run's purge of the same target and tenant still runs"))
        yield


def settle_attempts(key: str, matched_now: int, settled_by: int, *, ledger_conn_id: str = LEDGER_CONN_ID) -> int:
    """Settle earlier attempts of one purge that died (``running``) or failed; returns how many.

    Attempts run one after another (``_attempt_lock``), each row's ``planned`` is what the
    selection matched when it started, and the cut-off is the run's: so an attempt deleted
    its ``planned`` minus the next attempt's (``matched_now`` for the last). A failed row
    keeps its own count when that is higher (something put records back meanwhile).
    """
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            """SELECT id, outcome, planned, deleted, settled_by FROM purge_audit
               WHERE attempt_key = %s AND id < %s AND dry_run = 0 AND planned IS NOT NULL ORDER BY id""",
            (key, settled_by),
        )
        rows = cur.fetchall()
        settled = 0
        for i, (row_id, outcome, planned, deleted, already) in enumerate(rows):
            if outcome not in ("running", "failed") or already is not None:
                continue
            after = int(rows[i + 1][2]) if i + 1 < len(rows) else matched_now
            counted = max(int(deleted), int(planned) - after)
            with chained(cur, "purge_audit") as chain:
                cur.execute(
                    """UPDATE purge_audit SET outcome = IF(outcome = 'running', 'interrupted', outcome), deleted = %s,
                         verified_remaining = %s, settled_by = %s WHERE id = %s""",
                    (counted, after, settled_by, row_id),
                )
                chain.link("purge_audit", row_id, "settle")
            log.warning("Audit %d: %s attempt settled by attempt %d: deleted %d of %d (was %d)", row_id,
                        "interrupted" if outcome == "running" else "failed", settled_by, counted, planned, deleted)
            settled += 1
    return settled


def audited_purge(
    purge: Callable[[], PurgeResult],
    *,
    matched: Callable[[], int],
    dry_run: bool,
    run_id: str,
    dag_id: str,
    task_id: str,
    target: Target,
    selection: Selection,
    override_reason: str | None = None,
    key_extra: str = "",
    why: Why | None = None,
    ledger_conn_id: str = LEDGER_CONN_ID,
) -> PurgeResult:
    """Run one purge and audit it so that a crash at any point leaves the ledger exact.

    A real purge: take the attempt's lock, count what the selection matches now, write a
    ``running`` row with that count, settle earlier attempts that died or failed, purge,
    then complete the row (``ok`` or ``failed``). A dry run writes one row afterwards.

    :param purge: deletes the selection (or counts it, for a dry run) and returns the result.
    :param matched: counts what the selection matches now (the store's ``count``).
    """
    who: dict[str, Any] = {"run_id": run_id, "dag_id": dag_id, "task_id": task_id, "target": target,
                           "selection": selection, "override_reason": override_reason, "why": why}
    # Wall-clock times are for the audit only; they never choose what is deleted.
    started = wall_clock()
    if dry_run:
        try:
            result = purge()
        except Exception as exc:
            record_purge(ledger_conn_id, error=exc, dry_run=True, started_at=started, finished_at=wall_clock(),
                         **who)
            raise
        record_purge(ledger_conn_id, result=result, started_at=started, finished_at=wall_clock(), **who)
        return result
    key = attempt_key(run_id, target, selection, key_extra)
    with _attempt_lock(ledger_conn_id, key, scope_key(target, selection)):
        try:
            count = matched()
        except Exception as exc:
            record_purge(ledger_conn_id, error=exc, started_at=started, finished_at=wall_clock(), **who)
            raise
        audit_id = _open_attempt(ledger_conn_id, key, count, started, who)
        settle_attempts(key, count, audit_id, ledger_conn_id=ledger_conn_id)
        try:
            result = purge()
        except Exception as exc:
            record_purge(ledger_conn_id, error=exc, started_at=started, finished_at=wall_clock(),
                         audit_id=audit_id, **who)
            raise
        record_purge(ledger_conn_id, result=result, started_at=started, finished_at=wall_clock(),
                     audit_id=audit_id, **who)
    return result


def audited_purges(
    purge: Callable[[], Sequence[PurgeResult]],
    *,
    matched: Callable[[], Sequence[int]],
    dry_run: bool,
    run_id: str,
    dag_id: str,
    task_id: str,
    target: Target,
    selections: Sequence[Selection],
    whys: Sequence[Why | None],
    override_reason: str | None = None,
    ledger_conn_id: str = LEDGER_CONN_ID,
) -> list[PurgeResult]:
    """``audited_purge`` for a pass that purges several selections of one target at once: one
    audit row per selection, each with its own counts, as if they had run one after another.

    Each selection keeps the attempt key it would have alone, so an attempt settles earlier
    ones of the same selection whichever way they ran. All locks are taken before the count.

    :param purge: deletes every selection (or counts them, for a dry run), a result each in
        order; on failure part-way a ``PartialPurgesError`` says what each selection lost.
    :param matched: what each selection matches now as ``purge`` takes it (a record two
        selections match counts for the first only: the store's ``count_claimed``).
    :param whys: the audit's ``Why`` of each selection.
    """
    if len(whys) != len(selections):
        raise ValueError(f"{len(selections)} selections but {len(whys)} whys")
    whos: list[dict[str, Any]] = [{"run_id": run_id, "dag_id": dag_id, "task_id": task_id, "target": target,
                                   "selection": s, "override_reason": override_reason, "why": w}
                                  for s, w in zip(selections, whys)]
    started = wall_clock()
    if dry_run:
        try:
            results = _one_each(purge(), len(whos), "results")
        except Exception as exc:
            for who in whos:
                record_purge(ledger_conn_id, error=exc, dry_run=True, started_at=started, finished_at=wall_clock(),
                             **who)
            raise
        for who, result in zip(whos, results):
            record_purge(ledger_conn_id, result=result, started_at=started, finished_at=wall_clock(), **who)
        return results
    keys = [attempt_key(run_id, target, s) for s in selections]
    with _attempt_locks(ledger_conn_id, keys, [scope_key(target, s) for s in selections]):
        try:
            counts = _one_each(matched(), len(whos), "counts")
        except Exception as exc:
            for who in whos:
                record_purge(ledger_conn_id, error=exc, started_at=started, finished_at=wall_clock(), **who)
            raise
        audit_ids = [_open_attempt(ledger_conn_id, key, count, started, who)
                     for key, count, who in zip(keys, counts, whos)]
        # Settle each key's earlier attempts once, by its first row of this pass: a selection
        # planned twice (two requests of one tenant) must not settle this pass's own row.
        first: dict[str, tuple[int, int]] = {}
        for key, count, audit_id in zip(keys, counts, audit_ids):
            first.setdefault(key, (count, audit_id))
        for key, (count, audit_id) in first.items():
            settle_attempts(key, count, audit_id, ledger_conn_id=ledger_conn_id)
        try:
            results = _one_each(purge(), len(whos), "results")
        except Exception as exc:
            for index, (who, audit_id) in enumerate(zip(whos, audit_ids)):
                record_purge(ledger_conn_id, error=_share_of(exc, index, len(whos)), started_at=started,
                             finished_at=wall_clock(), audit_id=audit_id, **who)
            raise
        for who, audit_id, result in zip(whos, audit_ids, results):
            record_purge(ledger_conn_id, result=result, started_at=started, finished_at=wall_clock(),
                         audit_id=audit_id, **who)
    return results


def _one_each(values: Sequence[Any], n: int, what: str) -> list[Any]:
    values = list(values)
    if len(values) != n:
        raise RuntimeError(f"a pass over {n} selections returned {len(values)} {what}")
    return values


def _share_of(error: BaseException, index: int, n: int) -> BaseException:
    """The error to record for one selection of a failed pass: with what that selection lost.

    A total that cannot be split is recorded as 0 for each: the next attempt settles every row
    from counts, and a row must never claim records another selection lost.
    """
    if isinstance(error, PartialPurgesError) and len(error.each) == n:
        return PartialPurgeError(error.target, error.each[index], error.cause)
    if isinstance(error, PartialPurgeError):
        return PartialPurgeError(error.target, 0, f"{error.cause} (deleted {error.deleted} in all, not per selection)")
    return error


def _open_attempt(ledger_conn_id: str, key: str, planned: int, started: datetime, who: dict[str, Any]) -> int:
    """The ``running`` row of a purge about to start; returns its id."""
    selection: Selection = who["selection"]
    description = _checked_description(selection)
    values = _row(who["run_id"], who["dag_id"], who["task_id"], who["target"], selection, description,
                  planned=planned, deleted=0, remaining=None, method="n/a", dry_run=False,
                  override_reason=who["override_reason"], outcome="running", error_text=None,
                  details={"selection": description}, started_at=started, finished_at=started, why=who["why"])
    values["attempt_key"] = key
    columns = list(values)
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        with chained(cur, "purge_audit") as chain:
            cur.execute(f"INSERT INTO purge_audit ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                        tuple(values[c] for c in columns))
            audit_id = int(cur.lastrowid)
            chain.link("purge_audit", audit_id)
        return audit_id


@dataclass(frozen=True)
class AuditSummary:
    """What one run did to one target, summed over its audit rows."""

    store: str
    category: str
    target: str
    purges: int
    dry_runs: int
    failed: int
    refused: int
    planned: int
    deleted: int
    interrupted: int = 0


def summary(run_id: str, *, ledger_conn_id: str = LEDGER_CONN_ID) -> list[AuditSummary]:
    """Counts per store and target for one run, ordered by store, category, target."""
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            # planned: of the attempts that finished ok (an interrupted attempt's planned
            # overlaps the rerun's); deleted: of every real attempt (they never overlap).
            """SELECT store, category, target, COUNT(*), SUM(dry_run), SUM(outcome = 'failed'),
                 SUM(outcome = 'refused'), COALESCE(SUM(CASE WHEN outcome = 'ok' THEN planned END), 0),
                 COALESCE(SUM(CASE WHEN dry_run THEN 0 ELSE deleted END), 0), SUM(outcome = 'interrupted')
               FROM purge_audit WHERE run_id = %s GROUP BY store, category, target ORDER BY store, category, target""",
            (run_id,),
        )
        rows = cur.fetchall()
    return [
        AuditSummary(str(s), str(c), str(t), int(n), int(d or 0), int(f or 0), int(r or 0), int(p), int(x), int(i or 0))
        for s, c, t, n, d, f, r, p, x, i in rows
    ]


# --------------------------------------------------------------------------- reads for the dashboard and certificates


def run_totals(dag_id: str, run_ids: list[str], *, ledger_conn_id: str = LEDGER_CONN_ID) -> tuple[int, int, int]:
    """(rows, records deleted by real purges, failed or interrupted attempts) of these runs of ``dag_id``."""
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            f"""SELECT COUNT(*), COALESCE(SUM(CASE WHEN dry_run THEN 0 ELSE deleted END), 0),
                  COALESCE(SUM(outcome IN ('failed', 'interrupted')), 0)
                FROM purge_audit WHERE dag_id = %s AND run_id IN ({', '.join(['%s'] * len(run_ids))})""",
            (dag_id, *run_ids),
        )
        rows, deleted, failed = cur.fetchone()
    return int(rows), int(deleted), int(failed)


def withheld_hold_ids(dag_id: str, run_ids: list[str], *, ledger_conn_id: str = LEDGER_CONN_ID) -> list[int]:
    """Ids of the legal holds whose records these runs of ``dag_id`` kept out (``withheld``)."""
    if not run_ids:
        return []
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            f"""SELECT withheld FROM purge_audit WHERE dag_id = %s AND withheld IS NOT NULL
                AND run_id IN ({', '.join(['%s'] * len(run_ids))})""",
            (dag_id, *run_ids),
        )
        docs = [json.loads(w) for (w,) in cur.fetchall()]
    ids = {int(i) for d in docs for i in d.get("hold_ids", ())}
    ids |= {int(i) for d in docs for t in d.get("tenants", ()) for i in t.get("hold_ids", ())}
    return sorted(ids)


def deleted_per_hour(
    cur: Any, start: datetime, end: datetime, *, tenant: str | None = None
) -> list[tuple[str, datetime, int, int]]:
    """(category, naive UTC hour, deleted, failed attempts) of real purges (not dry runs) that
    finished in [``start``, ``end``); with ``tenant``, only rows attributed to that tenant."""
    sql = (
        "SELECT category, DATE_FORMAT(finished_at, '%%Y-%%m-%%d %%H:00:00') AS hour, SUM(deleted),"
        " SUM(outcome IN ('failed', 'interrupted')) FROM purge_audit"
        " WHERE dry_run = 0 AND finished_at >= %s AND finished_at < %s"
    )
    params: list[Any] = [to_naive_utc(start), to_naive_utc(end)]
    if tenant:
        sql += " AND tenant_id = %s"
        params.append(tenant)
    cur.execute(sql + " GROUP BY category, hour", tuple(params))
    return [
        (str(c), datetime.strptime(str(h), "%Y-%m-%d %H:%M:%S"), int(d or 0), int(f or 0))
        for c, h, d, f in cur.fetchall()
    ]


def recent_reasons(cur: Any, *, tenant: str | None = None, limit: int = 25) -> list[tuple[Any, ...]]:
    """The latest real purges that deleted or kept something out, newest first: (finished_at,
    category, target, tenant, deleted, rule JSON, withheld JSON, approved_by, override_reason)."""
    sql = ("SELECT finished_at, category, target, tenant_id, deleted, rule, withheld, approved_by, override_reason"
           " FROM purge_audit WHERE dry_run = 0 AND outcome IN ('ok', 'interrupted')"
           " AND (deleted > 0 OR withheld IS NOT NULL)")
    params: list[Any] = []
    if tenant:
        sql += " AND tenant_id = %s"
        params.append(tenant)
    cur.execute(sql + " ORDER BY id DESC LIMIT %s", (*params, int(limit)))
    return list(cur.fetchall())

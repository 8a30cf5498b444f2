"""What the demo shows a person: per DAG run and store, what was deleted and how long it took
(from the audit ledger), then each certificate's summary lines. Everything else the run prints
(Airflow's task logs, the package's INFO logs) goes to a log file: :func:`output_to_file`.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO


@dataclass(frozen=True)
class RunResult:
    """One DAG run of the demo, as the demo saw it end."""

    label: str  # what the summary calls it: the DAG id, or the request kind and reference
    dag_id: str
    run_id: str
    state: str  # the DAG run's state
    seconds: float  # wall time of the run
    ok: bool  # the run succeeded (and, for a request, the request completed)
    request_id: str | None = None
    note: str = ""  # why a run that did not fail is still not ok (e.g. "request rejected")


@dataclass(frozen=True)
class StoreTotal:
    """One store's share of one run, summed over its ``purge_audit`` rows."""

    store: str
    purges: int
    deleted: int
    failed: int  # rows whose outcome is not ok (failed, refused, interrupted)
    seconds: float  # the purges' own durations (``duration_s``)


def store_totals(run_ids: Sequence[str]) -> dict[str, list[StoreTotal]]:
    """Run id -> per store totals from ``purge_audit``, as the ledger records them."""
    from include.retention.ledger.db import connect, plain_cursor

    if not run_ids:
        return {}
    marks = ", ".join(["%s"] * len(run_ids))
    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute(
            f"""SELECT run_id, store, COUNT(*), COALESCE(SUM(deleted), 0), SUM(outcome <> 'ok'),
                       COALESCE(SUM(duration_s), 0)
                FROM purge_audit WHERE run_id IN ({marks}) GROUP BY run_id, store ORDER BY run_id, store""",
            tuple(run_ids),
        )
        rows = cur.fetchall()
    out: dict[str, list[StoreTotal]] = {}
    for run_id, store, purges, deleted, failed, seconds in rows:
        out.setdefault(str(run_id), []).append(
            StoreTotal(str(store), int(purges), int(deleted), int(failed or 0), float(seconds)))
    return out


def certificate_summary(document: Mapping[str, Any], crypto: Any) -> list[str]:
    """A certificate's title and summary lines (its Markdown up to the table of deletions),
    then the outcome of checking its signature and contents."""
    from include.retention.certificates.document import verify_document
    from include.retention.certificates.render import render_markdown

    lines = []
    for line in render_markdown(document).splitlines():
        if line.startswith("## "):
            break
        if line.strip():
            lines.append(line)
    return lines + [f"- **Check:** {verify_document(document, crypto)}"]


def format_summary(results: Sequence[RunResult], totals: Mapping[str, Sequence[StoreTotal]],
                   certificates: Sequence[Sequence[str]] = ()) -> list[str]:
    """The summary as lines: a table of runs and stores, then the certificates."""
    width = max([len(r.label) for r in results] + [3])
    head = f"{'run':<{width}}  {'state':<8}{'took':>7}  {'store':<14}{'deleted':>9}{'purges':>8}{'failed':>8}{'purge time':>12}"
    lines = [head, "-" * len(head)]
    for result in results:
        state = result.state if result.ok or result.state != "success" else "not ok"
        first = f"{result.label:<{width}}  {state:<8}{result.seconds:>6.1f}s  "
        stores = totals.get(result.run_id) or []
        if not stores:
            lines.append(first + ("nothing was due" if result.ok else "nothing was deleted"))
        for i, total in enumerate(stores):
            lead = first if i == 0 else " " * len(first)
            lines.append(f"{lead}{total.store:<14}{total.deleted:>9,}{total.purges:>8}{total.failed:>8}"
                         f"{total.seconds:>11.1f}s")
        if result.note:
            lines.append(" " * (width + 2) + f"({result.note})")
    for summary in certificates:
        lines.append("")
        lines.extend(summary)
    return lines


def failed_runs(results: Sequence[RunResult]) -> list[str]:
    return [r.label for r in results if not r.ok]


# --------------------------------------------------------------------------- output


@contextmanager
def output_to_file(path: Path) -> Iterator[TextIO]:
    """Send everything this process (and its children) writes to stdout and stderr, and every
    log record, to ``path``; yield a stream to the terminal for what a person should read.

    The file descriptors 1 and 2 are redirected (Airflow's task runner and subprocesses write
    there), and so are ``sys.stdout``, ``sys.stderr`` and the logging handlers' streams
    (structlog and logging keep references to the streams they were configured with).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    old_streams = (sys.stdout, sys.stderr)
    console = io.TextIOWrapper(os.fdopen(os.dup(saved[1]), "wb", buffering=0), line_buffering=True,
                               encoding="utf-8", errors="replace")
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    repointed = _repoint_handlers(log)
    try:
        yield console
    finally:
        log.flush()
        for handler, stream in repointed:
            handler.setStream(stream)
        sys.stdout, sys.stderr = old_streams
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        log.close()
        console.flush()
        console.close()


def _repoint_handlers(new: TextIO) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point every logging handler that writes to a stream at ``new``; what to restore.

    All of them, because which stream a handler captured depends on when it was made; but
    not a file handler, nor one writing to memory (someone's capture, such as pytest's).
    """
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    changed = []
    for lg in loggers:
        for handler in lg.handlers:
            if (not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler)
                    or isinstance(handler.stream, io.StringIO) or handler.stream is new):
                continue
            old = handler.stream
            try:
                handler.setStream(new)
            except AttributeError:  # logging's last resort: its stream is always sys.stderr, redirected above
                continue
            changed.append((handler, old))
    return changed

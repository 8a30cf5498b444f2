"""The cluster benchmark's arithmetic over REST task-instance documents (no cluster needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from benchmarks.bench_cluster import RunFigures, report

T0 = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


def ti(task_id: str, map_index: int, queued_s: float | None, ran_s: float, host: str | None,
       try_number: int = 1) -> dict[str, object]:
    started = T0 + timedelta(seconds=10)
    return {"task_id": task_id, "map_index": map_index, "try_number": try_number, "hostname": host,
            "queued_when": (started - timedelta(seconds=queued_s)).isoformat() if queued_s is not None else None,
            "start_date": started.isoformat().replace("+00:00", "Z"),
            "end_date": (started + timedelta(seconds=ran_s)).isoformat()}


@pytest.fixture
def run() -> RunFigures:
    tis = [ti("plan", -1, 0.5, 3, "worker-1"), ti("purge_mysql", 0, 4.0, 9, "worker-2"),
           ti("purge_mysql", 1, 1.5, 9, "worker-1", try_number=2), ti("skipped_one", -1, None, 0, None)]
    return RunFigures("retention_x", "manual__1", T0, T0 + timedelta(seconds=42.5), tis, [1.0, 2.5])


def test_figures_count_each_map_index_and_the_queue_of_the_tasks_that_started(run: RunFigures) -> None:
    assert run.wall_s == 42.5
    assert sorted(run.queued_s()) == [0.5, 1.5, 4.0]  # the never-queued one has no queue time
    assert run.per_worker() == {"worker-1": 2, "worker-2": 1}
    assert run.mapped() == 2 and run.retried() == 1


def test_report_puts_the_cluster_beside_dag_test_and_adds_the_all_at_once_row(
        run: RunFigures, capsys: pytest.CaptureFixture[str]) -> None:
    later = RunFigures("retention_y", "manual__2", T0 + timedelta(seconds=1), T0 + timedelta(seconds=61),
                       [ti("plan", -1, 2.0, 1, "worker-2")], [3.0])
    report([run], [run, later], {"retention_x": 30.0, "retention_y": 5.0})
    out = capsys.readouterr().out
    assert "| retention_x | 30.0 | 42.5 | 4 (2) | 6.0 / 4.0 | 2 / 1 | 1 | 1.0–2.5 |" in out
    # first trigger (T0) to last end (T0 + 61 s); five task instances of which 2 mapped
    assert "| all five triggered at once (first trigger → last end) | 35.0 (sum, one after another) | 61.0 | 5 (2) |" in out
    assert "| retention_y | 60.0 | 2.0 / 2.0 | 0 / 1 |" in out

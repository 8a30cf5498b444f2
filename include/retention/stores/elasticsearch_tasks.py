"""Delete-by-query as cluster tasks: start one per chunk of index names, long-poll it to the end, add up.

A subject's deletion (and the thinning of expired indices that hold a held subject) runs
``_delete_by_query`` with ``wait_for_completion=false`` and polls ``GET _tasks/{id}`` with a
bounded long poll. A task that fails, reports failures or outlives ``task_timeout_seconds``
raises :class:`PartialPurgeError` with the documents deleted so far; a task that timed out
keeps running in the cluster, and its id is in the error. A finished task's stored result is
deleted from ``.tasks``, as Elastic advises.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from include.retention.policy import ElasticsearchTarget
from include.retention.results import PartialPurgeError
from include.retention.stores.elasticsearch_client import ElasticsearchConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    """What delete-by-query tasks did, added up.

    :param conflicts: documents skipped because they changed while a task ran (a caller may
        run the query again for them).
    :param tasks: the task ids, for the operator (``GET _tasks/{id}``).
    :param seconds: the tasks' own ``took``, the cluster's time rather than ours.
    """

    deleted: int
    batches: int
    conflicts: int
    tasks: tuple[str, ...]
    seconds: float


class ElasticsearchTasks(ElasticsearchConnection):
    """Delete-by-query tasks over the store's connection (``scroll_size`` is the batch size)."""

    def _delete_by_query(
        self, target: ElasticsearchTarget, names: list[str], query: dict[str, Any], deleted_before: int
    ) -> TaskOutcome:
        """Run delete-by-query tasks over ``names`` (one per chunk of names) and add up their results."""
        deleted = batches = conflicts = took = 0
        tasks: list[str] = []
        for chunk in self._chunked(names):
            try:
                resp = self._call(
                    "delete by query",
                    self.client.delete_by_query,
                    index=chunk,
                    query=query,
                    conflicts="proceed",
                    slices="auto",
                    scroll_size=self.batch_size,
                    refresh=True,
                    wait_for_completion=False,
                    ignore_unavailable=True,
                    **self._throttle(),
                )
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted_before + deleted, exc) from exc
            task_id = str(resp["task"])
            tasks.append(task_id)
            result = self._wait_for_task(target, task_id, deleted_before + deleted)
            deleted += int(result.get("deleted", 0))
            took += int(result.get("took", 0))
            batches += int(result.get("batches", 0))
            conflicts += int(result.get("version_conflicts", 0))
            failures = result.get("failures") or []
            if failures or result.get("timed_out"):
                kinds = Counter(
                    f"{(f.get('cause') or f.get('reason') or {}).get('type', 'unknown')} ({f.get('status', '?')})"
                    for f in failures
                )
                summary = ", ".join(f"{kind} x{n}" for kind, n in kinds.most_common()) or "timed out"
                raise PartialPurgeError(
                    target.qualified_name,
                    deleted_before + deleted,
                    f"delete-by-query task {task_id} reported {len(failures)} failure(s): {summary}",
                )
        return TaskOutcome(deleted, batches, conflicts, tuple(tasks), took / 1000)

    def _throttle(self) -> dict[str, Any]:
        """``requests_per_second`` for a task (the store's throttle; none: Elasticsearch's unthrottled default)."""
        rps = getattr(self, "requests_per_second", None)
        return {"requests_per_second": rps} if rps is not None else {}

    def _wait_for_task(self, target: ElasticsearchTarget, task_id: str, deleted_before: int) -> dict[str, Any]:
        """Poll a delete-by-query task until it completes (bounded), then drop its stored result.

        Each poll is a long poll (``wait_for_completion=true`` with a timeout of at most
        ``poll_seconds``), so completion is seen at once without a flood of requests.
        """
        from elasticsearch import ApiError

        def get_task(wait: float) -> Any:
            params: dict[str, Any] = {}
            if wait > 0:
                params = {"wait_for_completion": "true", "timeout": f"{max(1, int(wait * 1000))}ms"}
            # GET _tasks/{id} through perform_request: client.tasks.get() is marked "technical
            # preview", and building that warning walks the whole stack (about 0.5 s a call here).
            return self._call(
                "read task",
                self.client.perform_request,
                method="GET",
                path=f"/_tasks/{quote(task_id, safe='')}",
                params=params,
                headers={"accept": "application/json"},
            )

        deadline = time.monotonic() + self.task_timeout_seconds
        while True:
            remaining = deadline - time.monotonic()
            try:
                resp = get_task(min(self.poll_seconds, remaining))
            except ApiError as exc:
                if exc.message != "timeout_exception":  # the long poll ended before the task did
                    raise PartialPurgeError(target.qualified_name, deleted_before, exc) from exc
                resp = None
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted_before, exc) from exc
            if resp is not None and resp.get("completed"):
                break
            if time.monotonic() >= deadline:
                try:
                    status = (get_task(0).get("task") or {}).get("status") or {}
                except Exception:  # noqa: BLE001 - the timeout is the error to report
                    status = {}
                raise PartialPurgeError(
                    target.qualified_name,
                    deleted_before + int(status.get("deleted", 0)),
                    f"delete-by-query task {task_id} did not finish within {self.task_timeout_seconds:g} s; it keeps "
                    f"running in the cluster (GET _tasks/{task_id}); rerun the purge once it is done",
                )
        if resp.get("error"):
            error = resp["error"]
            raise PartialPurgeError(
                target.qualified_name,
                deleted_before,
                f"delete-by-query task {task_id} failed: {error.get('type', 'error')}",
            )
        self._forget_task(task_id)
        return dict(resp.get("response") or {})

    def _forget_task(self, task_id: str) -> None:
        """Delete the task's stored result from ``.tasks``, as Elastic advises once it is read (best effort).

        Sent through the transport: Elasticsearch answers it with a system-index deprecation
        warning, and the client turns every warning into a Python warning by walking the
        whole stack (about 0.4 s a call here).
        """
        from elastic_transport import TransportError

        try:
            meta, _ = self.client.transport.perform_request(
                "DELETE",
                f"/.tasks/_doc/{quote(task_id, safe='')}",
                headers={"accept": "application/json", **self._auth_headers},
                request_timeout=self.request_timeout,
            )
            if meta.status not in (200, 404):
                log.info(
                    "Could not delete the stored result of task %s (HTTP %d); it is harmless", task_id, meta.status
                )
        except TransportError as exc:
            log.info("Could not delete the stored result of task %s (%s); it is harmless", task_id, type(exc).__name__)

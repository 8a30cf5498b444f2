"""COS (S3): delete a tenant's objects, expired day prefixes, or explicit keys, streaming.

Objects are found with paginated ``ListObjectsV2`` (``ListObjectVersions`` on a versioned
bucket) under a prefix rendered by the target's template from validated ids, and deleted
with ``DeleteObjects`` in batches of at most 1,000 keys (the API's limit) while the listing
goes on: the full key list is never held in memory. Every listed key is parsed again with
the template and must carry exactly the selected tenant (and unit) before it is deleted, so
tenant ``12`` never touches ``recordings/123/...`` and the agent backups of a day never touch
its call-data backups.

Selections:

- ``TenantSelection``: every object under ``template.prefix(tenant=T)`` that parses with the
  template as tenant T (a termination).
- ``ExpiredSelection``: exactly the objects under the listed ``units``, each a whole rendered
  day prefix (``recordings/12/2026/05/31/``) checked against the template, the selection's
  tenant, its exclusions and its cut-off. The units are read in one skip-scan: a listing
  that jumps (``StartAfter``) from one selected unit to the next, so a run of adjacent days
  costs one request per 1,000 objects, not one per day; planning counts the selections of
  all tenants in one such scan (:meth:`CosStore.count_each`).
- ``SubjectSelection``: only where the template itself carries the subject. Recordings carry
  none: their keys are in MySQL (``subject_keys_from``) and the caller passes them to
  :meth:`CosStore.purge_keys` / :meth:`CosStore.count_keys`, which check each key against
  the template and the tenant and delete only those that exist.

``DeleteObjects`` carries ``Content-MD5`` (``cos_client``): Swift's s3api and other
S3-compatible stores refuse a batch delete without it.

Versioned buckets: every version and delete marker of a selected key goes (a purge that
left noncurrent versions behind would delete nothing). Counts are then of versions and
markers, not of keys.

Counts: ``planned`` is what the listing matched, ``deleted`` what ``DeleteObjects``
acknowledged. ``Errors`` in a response raise :class:`PartialPurgeError` with the counts so
far and the first failing key (keys hold tenant, date and call id, no personal data).

Batches in flight: four by default (a remote bucket costs a round trip per batch); the
connection may set another bound (``{"retention_tuning": {"deletes_in_flight": 8}}`` in its
extra, 1 to 16): the listing goes on while that many ``DeleteObjects`` run. After a failure no new
batch is sent, the ones in flight are awaited and counted, and then the purge raises, so the
count stays what the server acknowledged.

This module is the verbs and the purge loop; what is listed and how each key is re-checked
is in ``cos_scan`` (pure), the client and the paginated listing in ``cos_bucket``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, tzinfo
from typing import Any, Iterable, Sequence

from include.retention.policy import CosTarget
from include.retention.results import PartialPurgeError, PurgeResult
from include.retention.selections import DatedUnit, ExpiredSelection, Selection
from include.retention.stores.cos_bucket import PAGE_SIZE, CosBucket, Entry
from include.retention.stores.cos_scan import (
    Scan,
    keys_scan,
    merged_scan,
    prefix_template,
    selection_scans,
    tenant_level,
    unit_bounds,
)
from include.retention.stores.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_COS_CONN_ID = "retention_cos"
MAX_DELETE_OBJECTS = 1_000  # keys per DeleteObjects request: the S3 (and COS) limit
MAX_DELETES_IN_FLIGHT = 16
DEFAULT_DELETES_IN_FLIGHT = 4  # a remote bucket costs a round trip per batch (docs/benchmarks/cos.md)
TUNING_EXTRA = "retention_tuning"  # the connection extra's key, as for MySQL


class CosStore(CosBucket):
    """Finds, counts, purges and verifies the objects of a COS (S3) target.

    :param aws_conn_id: Airflow connection for :class:`S3Hook`; the endpoint comes from its
        extra (``endpoint_url``), the default bucket from ``service_config.s3.bucket_name``.
    :param bucket: the bucket, overriding the connection's.
    :param timezone: the policy's zone: day prefixes are dates on its calendar.
    :param batch_size: keys per ``DeleteObjects`` (at most 1,000).
    :param page_size: keys per listing page (``MaxKeys``, at most 1,000).
    :param deletes_in_flight: ``DeleteObjects`` requests at once (1 to 16); None: the
        connection's ``retention_tuning.deletes_in_flight``, else 4.
    """

    store = "cos"

    def __init__(
        self,
        *,
        timezone: tzinfo,
        aws_conn_id: str = DEFAULT_COS_CONN_ID,
        bucket: str | None = None,
        batch_size: int = MAX_DELETE_OBJECTS,
        page_size: int = PAGE_SIZE,
        deletes_in_flight: int | None = None,
    ) -> None:
        if batch_size > MAX_DELETE_OBJECTS:
            raise ValueError(
                f"batch_size must be at most {MAX_DELETE_OBJECTS} (the DeleteObjects limit), got {batch_size}"
            )
        super().__init__(aws_conn_id=aws_conn_id, bucket=bucket, batch_size=batch_size, page_size=page_size)
        self.timezone = timezone
        self._deletes_in_flight = None if deletes_in_flight is None else _checked_in_flight(deletes_in_flight)

    @property
    def deletes_in_flight(self) -> int:
        """The bound on concurrent ``DeleteObjects``, read from the connection once when not given."""
        if self._deletes_in_flight is None:
            tuning = self.hook.get_connection(self.aws_conn_id).extra_dejson.get(TUNING_EXTRA) or {}
            try:
                if not isinstance(tuning, dict):
                    raise ValueError("it must be a JSON object")
                self._deletes_in_flight = _checked_in_flight(tuning.get("deletes_in_flight", DEFAULT_DELETES_IN_FLIGHT))
            except ValueError as exc:
                raise ValueError(f"connection {self.aws_conn_id!r}, extra {TUNING_EXTRA!r}: {exc}") from None
        return self._deletes_in_flight

    # ------------------------------------------------------------------ verbs

    def dated_units(self, target: CosTarget, *, before: datetime | None = None) -> list[DatedUnit]:
        """One unit per existing day prefix (the fully rendered template), tenant set.

        One listing of the target's head reads the keys of many tenants a page; a dense
        tenant's units come from a ``Delimiter='/'`` walk of its prefix instead
        (:meth:`CosBucket._unit_names`). Each unit must parse as a whole with the template.

        :param before: only the units that end on or before it (what may have expired by
            then); the listing of a tenant stops at its first later unit, so a tenant with
            nothing expired costs a share of one page, or one request when it is dense.
        """
        template = prefix_template(target)
        if template.date_placeholder is None:
            return []
        tz = self.timezone

        def expired(values: dict[str, object]) -> bool:
            return before is not None and unit_bounds(values, template, tz)[1] <= before

        if tenant_level(template):
            names = self._unit_names(template, expired if before is not None else None)
        else:  # a layout without a tenant level: the prefix tree, level by level
            head = template.prefix()
            depth = template.text.count("/") + (template.date_format or "").count("/") - head.count("/")
            names = set(self._walk(head, depth))
        units = []
        for name in sorted(names):
            values = template.parse(name, whole=True)
            if values is None:
                continue
            start, end = unit_bounds(values, template, tz)
            if before is None or end <= before:
                units.append(DatedUnit(name=name, start=start, end=end, tenant=str(values["tenant"])))
        return units

    def count(self, target: CosTarget, selection: Selection) -> int:
        """Objects (versions and delete markers on a versioned bucket) the selection matches now."""
        scans = selection_scans(target, selection, self.timezone)
        return sum(len(page) for scan in scans for page in self._selected(scan))

    def count_each(self, target: CosTarget, selections: Sequence[Selection]) -> list[int]:
        """``count`` of each selection, the expired units of all of them read in one skip-scan.

        Planning counts one expired selection per tenant: read one by one, each would cost a
        request even for a single unit. A key is counted for every selection whose own
        re-check takes it, exactly as ``count`` would.
        """
        counts = [0] * len(selections)
        scans = [selection_scans(target, s, self.timezone) for s in selections]  # every selection checked first
        expired = [i for i, s in enumerate(selections) if isinstance(s, ExpiredSelection) and scans[i]]
        merged = merged_scan([scans[i][0] for i in expired]) if len(expired) > 1 else None
        together = set(expired) if merged is not None else set()
        if merged is not None:
            scan, owners = merged
            for page in self._selected(scan):
                for entry in page:
                    index = scan.range_of(entry.key)
                    assert index is not None  # the skip-scan yields only keys in its ranges
                    for owner in owners[scan.starts[index]]:
                        if scans[expired[owner]][0].accept(entry.key):
                            counts[expired[owner]] += 1
        for i, each in enumerate(scans):
            if i not in together:
                counts[i] = sum(len(page) for one in each for page in self._selected(one))
        return counts

    def verify_each(self, target: CosTarget, selections: Sequence[Selection]) -> list[int]:
        """``verify`` of each selection: a fresh listing, as :meth:`count_each`."""
        return self.count_each(target, selections)

    def verify(self, target: CosTarget, selection: Selection) -> int:
        """A fresh listing after a purge; 0 means the selection is gone."""
        return self.count(target, selection)

    def purge(self, target: CosTarget, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        """Delete the selection in DeleteObjects batches as the listing streams; a dry run only counts."""
        return self._run(target, selection_scans(target, selection, self.timezone), dry_run=dry_run)

    def count_keys(self, target: CosTarget, tenant: str, keys: Iterable[str]) -> int:
        """How many of these explicit keys exist now (their versions and markers, if versioned)."""
        scan = keys_scan(target, tenant, keys)
        return sum(len(page) for page in self._selected(scan))

    def purge_keys(self, target: CosTarget, tenant: str, keys: Iterable[str], *, dry_run: bool = False) -> PurgeResult:
        """Delete these explicit keys of ``tenant`` (a subject's recordings, found in MySQL).

        Every key is checked against the template and the tenant before anything is deleted;
        only keys that exist are deleted and counted, so a rerun deletes 0.
        """
        return self._run(target, [keys_scan(target, tenant, keys)], dry_run=dry_run)

    # ------------------------------------------------------------------ purge loop

    def _run(self, target: CosTarget, scans: Sequence[Scan], *, dry_run: bool) -> PurgeResult:
        started = time.monotonic()
        versioned = self.versioned() if scans else False
        method = "list-versions+delete-objects" if versioned else "list+delete-objects"
        scope = "; ".join(s.scope for s in scans) or "nothing"
        progress = Progress()
        from botocore.exceptions import BotoCoreError, ClientError

        in_flight = 1 if dry_run else self.deletes_in_flight  # a bad setting stops the purge before any delete
        try:
            with _Deletes(self, target, progress, in_flight) as deletes:
                pending: list[Entry] = []
                for scan in scans:
                    for page in self._selected(scan, progress):
                        progress.matched += len(page)
                        if dry_run:
                            continue
                        pending.extend(page)
                        while len(pending) >= self.batch_size:
                            batch, pending = pending[: self.batch_size], pending[self.batch_size :]
                            deletes.send(batch)
                if pending:
                    deletes.send(pending)
        except (BotoCoreError, ClientError, OSError) as exc:
            log.error("Purge of %s (%s) failed after deleting %d objects in %d batches: %s",
                      target.qualified_name, scope, progress.deleted, progress.batches, type(exc).__name__)
            raise PartialPurgeError(target.qualified_name, progress.deleted, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.monotonic() - started
        log.info("%s %d of %d matched objects of %s (%s) in %d batches, %d listing requests (%.2fs)",
                 "Dry run: would delete" if dry_run else "Deleted",
                 progress.matched if dry_run else progress.deleted, progress.matched, target.qualified_name, scope,
                 progress.batches, progress.requests, seconds)
        return PurgeResult(
            target=target.qualified_name,
            store=self.store,
            method=method,
            planned=progress.matched,
            deleted=progress.deleted,
            batches=progress.batches,
            dry_run=dry_run,
            seconds=seconds,
            details={"bucket": self.bucket, "listing_requests": progress.requests, "versioned": versioned},
        )

    def _delete_batch(self, batch: list[Entry]) -> list[dict[str, Any]]:
        """One ``DeleteObjects``; the response's ``Errors`` (empty when every key went)."""
        objects: list[dict[str, str]] = [
            {"Key": e.key, "VersionId": e.version_id} if e.version_id is not None else {"Key": e.key} for e in batch
        ]
        response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        return list(response.get("Errors") or [])


def _checked_in_flight(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DELETES_IN_FLIGHT:
        raise ValueError(f"deletes_in_flight must be an integer from 1 to {MAX_DELETES_IN_FLIGHT}, got {value!r}")
    return value


class _Deletes:
    """``DeleteObjects`` batches, at most ``in_flight`` at once, counted in the calling thread.

    A failure (``Errors`` in a response, or the request itself) stops new batches; every batch
    still in flight is awaited and counted before the failure is raised, with that count.
    """

    def __init__(self, store: CosStore, target: CosTarget, progress: Progress, in_flight: int) -> None:
        self.store, self.target, self.progress, self.in_flight = store, target, progress, in_flight
        self.pool = ThreadPoolExecutor(max_workers=in_flight) if in_flight > 1 else None
        self.running: dict[Future[list[dict[str, Any]]], int] = {}
        self.error: BaseException | None = None  # a request that failed
        self.refusal: str | None = None  # keys the server refused (``Errors``)

    def __enter__(self) -> _Deletes:
        return self

    def send(self, batch: list[Entry]) -> None:
        if self.pool is None:
            self._count(len(batch), self.store._delete_batch(batch))
        else:
            while len(self.running) >= self.in_flight and not self._failed():
                self._collect()
            if not self._failed():  # a batch that failed while this one waited stops it too
                self.running[self.pool.submit(self.store._delete_batch, batch)] = len(batch)
        if self._failed():
            self._drain()  # no new batch; the ones in flight are counted before the failure is raised
            self._raise()

    def __exit__(self, *exc: object) -> None:
        try:
            self._drain()
        finally:
            if self.pool is not None:
                self.pool.shutdown()
        if exc[1] is None and self._failed():
            self._raise()

    def _failed(self) -> bool:
        return self.error is not None or self.refusal is not None

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error
        raise PartialPurgeError(self.target.qualified_name, self.progress.deleted, str(self.refusal))

    def _drain(self) -> None:
        while self.running:
            self._collect()

    def _collect(self) -> None:
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        for future in done:
            size = self.running.pop(future)
            error = future.exception()
            if error is not None:
                self.error = self.error or error
            else:
                self._count(size, future.result())

    def _count(self, size: int, errors: list[dict[str, Any]]) -> None:
        self.progress.deleted += size - len(errors)
        self.progress.batches += 1
        if errors and self.refusal is None:
            first = errors[0]
            self.refusal = (f"DeleteObjects refused {len(errors)} of {size} keys; first {first.get('Key')!r}: "
                            f"{first.get('Code')} {first.get('Message', '')}".rstrip())
            log.error("Purge of %s: %s", self.target.qualified_name, self.refusal)

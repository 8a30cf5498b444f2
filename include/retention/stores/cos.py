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
  tenant, its exclusions and its cut-off. Units of one tenant are read in one skip-scan: a
  listing that jumps (``StartAfter``) from one selected unit to the next, so a run of
  adjacent days costs one request per 1,000 objects, not one per day.
- ``SubjectSelection``: only where the template itself carries the subject. Recordings carry
  none: their keys are in MySQL (``subject_keys_from``) and the caller passes them to
  :meth:`CosStore.purge_keys` / :meth:`CosStore.count_keys`, which check each key against
  the template and the tenant and delete only those that exist.

``DeleteObjects`` carries ``Content-MD5``: COS's own SDKs always send it, and Swift's s3api
(and other S3-compatible stores) refuse a batch delete without it, while botocore >= 1.36
sends a CRC32 flexible checksum instead. A ``before-call.s3.DeleteObjects`` handler sets the
MD5 before the request is signed and drops the flexible-checksum headers.

Versioned buckets: every version and delete marker of a selected key goes (a purge that
left noncurrent versions behind would delete nothing). Counts are then of versions and
markers, not of keys.

Counts: ``planned`` is what the listing matched, ``deleted`` what ``DeleteObjects``
acknowledged. ``Errors`` in a response raise :class:`PartialPurgeError` with the counts so
far and the first failing key (keys hold tenant, date and call id, no personal data).
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Iterable, Iterator, Sequence

from include.retention.identifiers import Template
from include.retention.policy import CosTarget
from include.retention.selections import (
    DatedUnit,
    ExpiredSelection,
    Selection,
    SubjectSelection,
    TenantSelection,
)
from include.retention.results import PartialPurgeError, PurgeResult, UnsupportedSelection
from include.retention.stores.base import RetentionStore

log = logging.getLogger(__name__)

DEFAULT_COS_CONN_ID = "retention_cos"
MAX_DELETE_OBJECTS = 1_000  # keys per DeleteObjects request: the S3 (and COS) limit
PAGE_SIZE = 1_000  # keys per listing page: the S3 maximum
LIST_CONCURRENCY = 8  # parallel CommonPrefixes listings while walking dated units
_HANDLER_ID = "retention-cos-content-md5"


# --------------------------------------------------------------------------- Content-MD5


def add_content_md5(params: dict[str, Any], **_: Any) -> None:
    """botocore ``before-call.s3.DeleteObjects`` handler: send Content-MD5, not a CRC32.

    Runs before the request is signed. Sets the base64 MD5 of the serialized body, removes
    any flexible-checksum header and clears botocore's checksum context so that it adds no
    ``x-amz-checksum-crc32`` of its own (botocore >= 1.36 does so for operations that
    require a checksum; S3-compatible stores that predate it reject the batch delete).
    """
    body = params.get("body") or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray)):  # a stream: botocore never builds one for this call
        return
    headers = params.setdefault("headers", {})
    for name in list(headers):
        lowered = name.lower()
        if lowered.startswith("x-amz-checksum-") or lowered in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer"):
            del headers[name]
    headers["Content-MD5"] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode("ascii")
    checksum = params.get("context", {}).get("checksum")
    if isinstance(checksum, dict):
        checksum.pop("request_algorithm", None)
        checksum.pop("request_algorithm_header", None)


def install_content_md5(client: Any) -> Any:
    """Register :func:`add_content_md5` on ``client`` (idempotent); returns the client."""
    client.meta.events.register("before-call.s3.DeleteObjects", add_content_md5, unique_id=_HANDLER_ID)
    return client


# --------------------------------------------------------------------------- listing speed


def iso_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, with a fast path for S3's ISO 8601 ``LastModified``.

    botocore parses every timestamp with ``dateutil.parser.parse``: about 1 ms a call on
    this kind of machine, which is 60% of a purge's time (every listed object carries a
    ``LastModified``). ``datetime.fromisoformat`` reads the same strings exactly; anything
    else goes to botocore's own parser.
    """
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    from botocore.utils import parse_timestamp

    return parse_timestamp(value)


def install_fast_timestamps(client: Any) -> Any:
    """Give the client's response parsers :func:`iso_timestamp` (the factory is per session)."""
    factory = getattr(getattr(client, "_endpoint", None), "_response_parser_factory", None)
    if factory is not None and hasattr(factory, "set_parser_defaults"):
        factory.set_parser_defaults(timestamp_parser=iso_timestamp)
    return client


# --------------------------------------------------------------------------- key parsing


@functools.lru_cache(maxsize=4096)
def _strpdate(text: str, fmt: str) -> date | None:
    try:
        return datetime.strptime(text, fmt).date()
    except ValueError:
        return None


class _KeyParser:
    """``template.parse`` with the regex compiled once; also returns the key's unit.

    ``Template.regex`` rebuilds its pattern on every call; a purge parses every listed key.
    For a key, ``parse(key)`` is exactly the groups of ``regex.match(key)`` with the date
    parsed by ``strptime`` (None when it is not a real date), and the unit (the fully
    rendered template the key lies under) is ``key[:match.end()]``.
    """

    def __init__(self, template: Template) -> None:
        self.template = template
        self._match = template.regex.match
        self._dated = template.date_placeholder
        self._format = template.date_format or ""

    def __call__(self, key: str) -> tuple[str, dict[str, object]] | None:
        found = self._match(key)
        if found is None:
            return None
        values: dict[str, object] = dict(found.groupdict())
        if self._dated:
            parsed = _strpdate(str(values[self._dated]), self._format)
            if parsed is None:
                return None
            values[self._dated] = parsed
        return key[: found.end()], values


# --------------------------------------------------------------------------- selections


@dataclass(frozen=True)
class _Entry:
    """One listed object, or one version / delete marker of it on a versioned bucket."""

    key: str
    version_id: str | None = None


@dataclass(frozen=True)
class _Scan:
    """What to list and how to re-check each key. No personal data in its repr.

    :param prefix: the listing prefix (rendered from validated ids).
    :param starts: sorted starts of the selected ranges; the listing visits only these.
    :param exact: the ranges are single keys (explicit keys) rather than prefixes.
    :param accept: the template re-check of one key.
    """

    prefix: str
    starts: tuple[str, ...]
    exact: bool
    accept: Callable[[str], bool]
    scope: str

    def __repr__(self) -> str:
        return f"_Scan(scope={self.scope!r}, ranges={len(self.starts)})"

    def range_of(self, key: str) -> int | None:
        """Index of the selected range holding ``key``, or None."""
        index = bisect.bisect_right(self.starts, key) - 1
        if index < 0:
            return None
        start = self.starts[index]
        if key == start or (not self.exact and key.startswith(start)):
            return index
        return None

    def past_end(self, key: str) -> bool:
        return key > self.starts[-1] and self.range_of(key) is None

    def next_start(self, key: str) -> str | None:
        """The first selected range starting after ``key``."""
        index = bisect.bisect_right(self.starts, key)
        return self.starts[index] if index < len(self.starts) else None


def _before(start: str) -> str:
    """A ``StartAfter`` that lists ``start`` and every key beginning with it."""
    return start[:-1]


def _next_version_marker(page: dict[str, Any], listed: list[tuple[str, str, Any]]) -> tuple[str, str | None]:
    """Where a truncated ListObjectVersions page goes on: (KeyMarker, VersionIdMarker or None).

    Swift 2.30's s3api answers ``NextVersionIdMarker: null`` however the page ends, and then
    lists nothing after ``(key, "null")``; so a declared marker is used only when it is one
    of the versions this page listed of that key, else the oldest listed one (versions of a
    key come newest first). A ``null`` version as the marker continues at the next key: in
    the rare bucket whose versioning was suspended, versions older than a null one are then
    left for a rerun, and ``verify()`` reports them.
    """
    key = page.get("NextKeyMarker") or listed[-1][0]
    declared = page.get("NextVersionIdMarker")
    of_key = [(version, modified) for k, version, modified in listed if k == key]
    if declared and declared != "null" and any(version == declared for version, _ in of_key):
        return key, declared
    if of_key:
        oldest = min(of_key, key=lambda item: (item[1] or datetime.min.replace(tzinfo=timezone.utc),
                                               _numeric(item[0])))[0]
        if oldest != "null":
            return key, oldest
    return key, None


def _numeric(version_id: str) -> float:
    try:
        return float(version_id)
    except ValueError:
        return float("inf")


def _unit_bounds(values: dict[str, object], template: Template, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the day (or month) a unit stands for, in the store's zone."""
    placeholder = template.date_placeholder
    day = values[placeholder]  # type: ignore[index]
    assert isinstance(day, date)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    if placeholder == "month":
        first = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        return start, datetime(first.year, first.month, 1, tzinfo=tz)
    following = day + timedelta(days=1)
    return start, datetime(following.year, following.month, following.day, tzinfo=tz)


class _Progress:
    """Mutable counters of one purge, readable after a failure part-way."""

    __slots__ = ("matched", "deleted", "batches", "requests")

    def __init__(self) -> None:
        self.matched = 0
        self.deleted = 0
        self.batches = 0
        self.requests = 0


# --------------------------------------------------------------------------- the store


class CosStore(RetentionStore[CosTarget]):
    """Finds, counts, purges and verifies the objects of a COS (S3) target.

    :param aws_conn_id: Airflow connection for :class:`S3Hook`; the endpoint comes from its
        extra (``endpoint_url``), the default bucket from ``service_config.s3.bucket_name``.
    :param bucket: the bucket, overriding the connection's.
    :param timezone: the policy's zone: day prefixes are dates on its calendar.
    :param batch_size: keys per ``DeleteObjects`` (at most 1,000).
    :param page_size: keys per listing page (``MaxKeys``, at most 1,000).
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
    ) -> None:
        if batch_size > MAX_DELETE_OBJECTS:
            raise ValueError(
                f"batch_size must be at most {MAX_DELETE_OBJECTS} (the DeleteObjects limit), got {batch_size}"
            )
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}, got {page_size}")
        super().__init__(batch_size=batch_size)
        self.page_size = page_size
        self.aws_conn_id = aws_conn_id
        self.timezone = timezone
        self._bucket = bucket
        self._client: Any = None
        self._hook: Any = None
        self._versioned: dict[str, bool] = {}

    # ------------------------------------------------------------------ client

    @property
    def hook(self) -> Any:
        if self._hook is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._hook = S3Hook(aws_conn_id=self.aws_conn_id)
        return self._hook

    @property
    def client(self) -> Any:
        """The boto3 S3 client from the provider hook, with the Content-MD5 handler."""
        if self._client is None:
            self._client = install_fast_timestamps(install_content_md5(self.hook.get_conn()))
        return self._client

    @property
    def bucket(self) -> str:
        if self._bucket is None:
            name = self.hook.service_config.get("bucket_name")
            if not name:
                raise ValueError(
                    f"no bucket: pass bucket= or set service_config.s3.bucket_name in the extra of connection "
                    f"{self.aws_conn_id!r}"
                )
            self._bucket = str(name)
        return self._bucket

    def versioned(self) -> bool:
        """Whether the bucket has (or had) versioning on: then versions and markers are listed."""
        bucket = self.bucket
        if bucket not in self._versioned:
            status = self.client.get_bucket_versioning(Bucket=bucket).get("Status")
            self._versioned[bucket] = status in ("Enabled", "Suspended")
        return self._versioned[bucket]

    # ------------------------------------------------------------------ listing

    def _pages(self, prefix: str, start_after: str | None) -> Iterator[tuple[list[_Entry], str | None]]:
        """Pages of entries under ``prefix`` after ``start_after``, each with its last key
        (None on the last page)."""
        client, bucket = self.client, self.bucket
        if self.versioned():
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": self.page_size}
            if start_after:
                kwargs["KeyMarker"] = start_after
            while True:
                page = client.list_object_versions(**kwargs)
                listed = [(v["Key"], v["VersionId"], v.get("LastModified")) for v in page.get("Versions", ())]
                listed += [(m["Key"], m["VersionId"], m.get("LastModified")) for m in page.get("DeleteMarkers", ())]
                entries = sorted((_Entry(k, v) for k, v, _ in listed), key=lambda e: e.key)
                truncated = bool(page.get("IsTruncated")) and bool(listed)
                if not truncated:
                    yield entries, None
                    return
                key_marker, version_marker = _next_version_marker(page, listed)
                yield entries, key_marker
                kwargs["KeyMarker"] = key_marker
                if version_marker is None:
                    kwargs.pop("VersionIdMarker", None)
                else:
                    kwargs["VersionIdMarker"] = version_marker
        kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": self.page_size}
        if start_after:
            kwargs["StartAfter"] = start_after
        while True:
            page = client.list_objects_v2(**kwargs)
            entries = [_Entry(o["Key"]) for o in page.get("Contents", ())]
            truncated = page.get("IsTruncated", False)
            yield entries, (entries[-1].key if entries else None) if truncated else None
            if not truncated:
                return
            kwargs.pop("StartAfter", None)
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def _selected(self, scan: _Scan, progress: _Progress | None = None) -> Iterator[list[_Entry]]:
        """Pages of the entries a scan selects, visiting only the selected ranges.

        Within a page every key is re-checked; at a page boundary outside every selected
        range the listing restarts at the next range (``StartAfter``) instead of reading
        the keys in between.
        """
        if not scan.starts:
            return
        start_after: str | None = _before(scan.starts[0]) if scan.starts[0] != scan.prefix else None
        while True:
            restart: str | None = None
            for entries, last in self._pages(scan.prefix, start_after):
                if progress is not None:
                    progress.requests += 1
                chosen: list[_Entry] = []
                finished = False
                for entry in entries:
                    if scan.range_of(entry.key) is not None:
                        if scan.accept(entry.key):
                            chosen.append(entry)
                    elif scan.past_end(entry.key):
                        finished = True
                        break
                if chosen:
                    yield chosen
                if finished or last is None:
                    return
                if scan.range_of(last) is None:
                    following = scan.next_start(last)
                    if following is None:
                        return
                    jump = _before(following)
                    if jump > last:
                        restart = jump
                        break
            if restart is None:
                return
            start_after = restart

    def _common_prefixes(self, prefix: str) -> list[str]:
        client, bucket = self.client, self.bucket
        out: list[str] = []
        if self.versioned():
            paginator = client.get_paginator("list_object_versions")
        else:
            paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            out.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
        return out

    # ------------------------------------------------------------------ selections

    @staticmethod
    def _template(target: CosTarget) -> Template:
        if target.prefix is None:
            raise UnsupportedSelection(f"{target.qualified_name} has no prefix template")
        return target.prefix

    def _scan(self, target: CosTarget, selection: Selection) -> _Scan:
        template = self._template(target)
        parse = _KeyParser(template)
        if isinstance(selection, TenantSelection):
            tenant = selection.tenant
            prefix = template.prefix(tenant=tenant)  # validates the tenant id

            def accept_tenant(key: str) -> bool:
                parsed = parse(key)
                return parsed is not None and parsed[1].get("tenant") == tenant

            return _Scan(prefix, (prefix,), False, accept_tenant, f"tenant {tenant}")
        if isinstance(selection, SubjectSelection):
            subject_type, tenant = selection.subject_type, selection.tenant
            if subject_type not in template.subject_types:
                via = f" (its keys come from {target.subject_keys_from.target}: use purge_keys)" if (
                    target.subject_keys_from) else ""
                raise UnsupportedSelection(
                    f"{target.qualified_name}: object keys under {template.text!r} carry no {subject_type}{via}"
                )
            subject_id = selection.subject_id
            prefix = template.prefix(tenant=tenant, **{subject_type: subject_id})  # validates both

            def accept_subject(key: str) -> bool:
                parsed = parse(key)
                if parsed is None:
                    return False
                return parsed[1].get("tenant") == tenant and parsed[1].get(subject_type) == subject_id

            return _Scan(prefix, (prefix,), False, accept_subject, f"one {subject_type} of tenant {tenant}")
        if isinstance(selection, ExpiredSelection):
            raise AssertionError("expired selections are scanned per tenant: use _expired_scans")
        raise UnsupportedSelection(f"unknown selection {type(selection).__name__}")

    def _expired_scans(self, target: CosTarget, selection: ExpiredSelection) -> list[_Scan]:
        """One skip-scan per tenant over exactly the selection's units, each unit checked."""
        template = self._template(target)
        if template.date_placeholder is None:
            raise UnsupportedSelection(
                f"{target.qualified_name}: {template.text!r} has no date, so nothing expires by age"
            )
        kept = set(selection.exclude_tenants) | {s[0] for s in selection.exclude_subjects}
        by_tenant: dict[str, set[str]] = {}
        for unit in selection.units:
            values = template.parse(unit, whole=True)
            if values is None:
                raise ValueError(
                    f"{target.qualified_name}: unit {unit!r:.120} is not a prefix rendered by {template.text!r}"
                )
            tenant = str(values["tenant"])
            if selection.tenant is not None and tenant != selection.tenant:
                raise ValueError(f"{target.qualified_name}: unit {unit!r} is not of tenant {selection.tenant}")
            _, end = _unit_bounds(values, template, self.timezone)
            if end > selection.before:
                raise ValueError(
                    f"{target.qualified_name}: unit {unit!r} ends at {end.isoformat()}, after the cut-off "
                    f"{selection.before.isoformat()}; only whole units before it may be deleted"
                )
            if tenant in kept:
                log.info("Keeping unit %s of %s: tenant %s is excluded", unit, target.qualified_name, tenant)
                continue
            by_tenant.setdefault(tenant, set()).add(unit)
        parse = _KeyParser(template)
        scans = []
        for tenant in sorted(by_tenant):
            units = frozenset(by_tenant[tenant])

            def accept_unit(key: str, units: frozenset[str] = units, tenant: str = tenant) -> bool:
                parsed = parse(key)
                return parsed is not None and parsed[0] in units and parsed[1].get("tenant") == tenant

            scans.append(_Scan(template.prefix(tenant=tenant), tuple(sorted(units)), False, accept_unit,
                               f"{len(units)} unit(s) of tenant {tenant}"))
        return scans

    def _scans(self, target: CosTarget, selection: Selection) -> list[_Scan]:
        if isinstance(selection, ExpiredSelection):
            return self._expired_scans(target, selection)
        return [self._scan(target, selection)]

    def _keys_scan(self, target: CosTarget, tenant: str, keys: Iterable[str]) -> _Scan:
        """A scan of explicit keys; every key must lie under the template, for ``tenant``."""
        template = self._template(target)
        prefix = template.prefix(tenant=tenant)  # validates the tenant id
        parse = _KeyParser(template)
        wanted: set[str] = set()
        for index, key in enumerate(keys):
            parsed = parse(key) if isinstance(key, str) else None
            # the key is not echoed: it came from a database column and is not ours to print
            if parsed is None or parsed[1].get("tenant") != tenant or not key.startswith(prefix):
                raise ValueError(
                    f"{target.qualified_name}: key #{index} is not an object key under {template.text!r} "
                    f"for tenant {tenant}; nothing was deleted"
                )
            wanted.add(key)
        scope = f"{len(wanted)} key(s) of tenant {tenant}"
        return _Scan(prefix, tuple(sorted(wanted)), True, wanted.__contains__, scope)

    # ------------------------------------------------------------------ verbs

    def dated_units(self, target: CosTarget) -> list[DatedUnit]:
        """One unit per existing day prefix (the fully rendered template), tenant set.

        Walks the prefix tree level by level with ``Delimiter='/'`` (CommonPrefixes), never
        listing the objects themselves; each candidate must parse as a whole with the template.
        """
        template = self._template(target)
        if template.date_placeholder is None:
            return []
        self.versioned()  # resolve the client and the bucket's mode before the threads share them
        head = template.prefix()
        depth = template.text.count("/") + (template.date_format or "").count("/") - head.count("/")
        level = [head]
        with ThreadPoolExecutor(max_workers=LIST_CONCURRENCY) as pool:
            for _ in range(depth):
                level = [p for found in pool.map(self._common_prefixes, level) for p in found]
                if not level:
                    return []
        units = []
        for name in sorted(level):
            values = template.parse(name, whole=True)
            if values is None:
                continue
            start, end = _unit_bounds(values, template, self.timezone)
            units.append(DatedUnit(name=name, start=start, end=end, tenant=str(values["tenant"])))
        return units

    def count(self, target: CosTarget, selection: Selection) -> int:
        """Objects (versions and delete markers on a versioned bucket) the selection matches now."""
        return sum(len(page) for scan in self._scans(target, selection) for page in self._selected(scan))

    def verify(self, target: CosTarget, selection: Selection) -> int:
        """A fresh listing after a purge; 0 means the selection is gone."""
        return self.count(target, selection)

    def purge(self, target: CosTarget, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        """Delete the selection in DeleteObjects batches as the listing streams; a dry run only counts."""
        return self._run(target, self._scans(target, selection), dry_run=dry_run)

    def count_keys(self, target: CosTarget, tenant: str, keys: Iterable[str]) -> int:
        """How many of these explicit keys exist now (their versions and markers, if versioned)."""
        scan = self._keys_scan(target, tenant, keys)
        return sum(len(page) for page in self._selected(scan))

    def purge_keys(self, target: CosTarget, tenant: str, keys: Iterable[str], *, dry_run: bool = False) -> PurgeResult:
        """Delete these explicit keys of ``tenant`` (a subject's recordings, found in MySQL).

        Every key is checked against the template and the tenant before anything is deleted;
        only keys that exist are deleted and counted, so a rerun deletes 0.
        """
        return self._run(target, [self._keys_scan(target, tenant, keys)], dry_run=dry_run)

    # ------------------------------------------------------------------ purge loop

    def _run(self, target: CosTarget, scans: Sequence[_Scan], *, dry_run: bool) -> PurgeResult:
        started = time.monotonic()
        versioned = self.versioned() if scans else False
        method = "list-versions+delete-objects" if versioned else "list+delete-objects"
        scope = "; ".join(s.scope for s in scans) or "nothing"
        progress = _Progress()
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pending: list[_Entry] = []
            for scan in scans:
                for page in self._selected(scan, progress):
                    progress.matched += len(page)
                    if dry_run:
                        continue
                    pending.extend(page)
                    while len(pending) >= self.batch_size:
                        batch, pending = pending[: self.batch_size], pending[self.batch_size :]
                        self._delete_batch(target, batch, progress)
            if pending:
                self._delete_batch(target, pending, progress)
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

    def _delete_batch(self, target: CosTarget, batch: list[_Entry], progress: _Progress) -> None:
        objects: list[dict[str, str]] = [
            {"Key": e.key, "VersionId": e.version_id} if e.version_id is not None else {"Key": e.key} for e in batch
        ]
        response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        errors = response.get("Errors") or []
        progress.deleted += len(batch) - len(errors)
        progress.batches += 1
        if errors:
            first = errors[0]
            cause = (f"DeleteObjects refused {len(errors)} of {len(batch)} keys; first {first.get('Key')!r}: "
                     f"{first.get('Code')} {first.get('Message', '')}".rstrip())
            log.error("Purge of %s: %s", target.qualified_name, cause)
            raise PartialPurgeError(target.qualified_name, progress.deleted, cause)

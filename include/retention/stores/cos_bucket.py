"""The bucket side of a COS store: the client from the provider hook, and the paginated listing.

Objects are found with paginated ``ListObjectsV2`` (``ListObjectVersions`` on a versioned
bucket) under a scan's prefix. The listing visits only a scan's selected ranges: at a page
boundary outside every range it restarts (``StartAfter``) at the next one, so a run of
adjacent days costs one request per 1,000 objects, not one per day. The full key list is
never held in memory.

The dated units of a target are found by one listing of the template's head, a page of keys
covering many sparse tenants; a dense tenant is walked with ``Delimiter='/'`` instead, or,
under a cut-off, skipped past unit by unit and then past its first later unit
(:meth:`CosBucket._unit_names`). Planning's LIST requests thus grow with pages of objects,
not with tenants x days.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator

from include.retention.identifiers import Template
from include.retention.policy import CosTarget
from include.retention.stores.base import RetentionStore
from include.retention.stores.cos_client import install_content_md5, install_fast_timestamps
from include.retention.stores.cos_scan import KeyParser, Scan, dates_in_key_order, past, tenant_group
from include.retention.stores.progress import Progress
from include.retention.timeutil import UTC

log = logging.getLogger(__name__)

PAGE_SIZE = 1_000  # keys per listing page: the S3 maximum
#: A full page of one tenant with fewer units than this is a dense tenant: its prefix tree is walked
#: (``Delimiter='/'``, a request per month) rather than read page by page.
DENSE_UNITS = 30
LIST_CONCURRENCY = 8  # parallel CommonPrefixes listings while walking a dense tenant's prefix tree


@dataclass(frozen=True)
class Entry:
    """One listed object, or one version / delete marker of it on a versioned bucket."""

    key: str
    version_id: str | None = None


def _before(start: str) -> str:
    """A ``StartAfter`` that lists ``start`` and every key beginning with it."""
    return start[:-1]


def next_version_marker(page: dict[str, Any], listed: list[tuple[str, str, Any]]) -> tuple[str, str | None]:
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
        oldest = min(of_key, key=lambda item: (item[1] or datetime.min.replace(tzinfo=UTC),
                                               _numeric(item[0])))[0]
        if oldest != "null":
            return key, oldest
    return key, None


def _numeric(version_id: str) -> float:
    try:
        return float(version_id)
    except ValueError:
        return float("inf")


class CosBucket(RetentionStore[CosTarget]):
    """The client, bucket and listing of a COS store; :class:`CosStore` documents the settings.
    No I/O in ``__init__``."""

    def __init__(self, *, aws_conn_id: str, bucket: str | None, batch_size: int, page_size: int) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}, got {page_size}")
        super().__init__(batch_size=batch_size)
        self.page_size = page_size
        self.aws_conn_id = aws_conn_id
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

    def _pages(self, prefix: str, start_after: str | None) -> Iterator[tuple[list[Entry], str | None]]:
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
                entries = sorted((Entry(k, v) for k, v, _ in listed), key=lambda e: e.key)
                truncated = bool(page.get("IsTruncated")) and bool(listed)
                if not truncated:
                    yield entries, None
                    return
                key_marker, version_marker = next_version_marker(page, listed)
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
            entries = [Entry(o["Key"]) for o in page.get("Contents", ())]
            truncated = page.get("IsTruncated", False)
            yield entries, (entries[-1].key if entries else None) if truncated else None
            if not truncated:
                return
            kwargs.pop("StartAfter", None)
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def _selected(self, scan: Scan, progress: Progress | None = None) -> Iterator[list[Entry]]:
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
                chosen: list[Entry] = []
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

    # ------------------------------------------------------------------ finding units

    def _walk(self, head: str, depth: int) -> list[str]:
        """The prefixes ``depth`` levels below ``head``: ``Delimiter='/'`` listings, level by level."""
        self.versioned()  # resolve the client and the bucket's mode before the threads share them
        level = [head]
        with ThreadPoolExecutor(max_workers=LIST_CONCURRENCY) as pool:
            for _ in range(depth):
                level = [p for found in pool.map(self._common_prefixes, level) for p in found]
                if not level:
                    break
        return level

    def _unit_names(self, template: Template, expired: Callable[[dict[str, object]], bool] | None) -> set[str]:
        """The units (rendered prefixes) that hold at least one object, read in one listing of the
        template's head; with ``expired``, only the units it takes.

        The listing reads keys, not prefixes: a page of 1,000 keys covers many sparse tenants.
        At a page boundary it skips (``StartAfter``) what it need not read:

        - a tenant whose keys fill the whole page (a dense tenant): with ``expired``, past the
          unit of the page's last key (each further request finds a new unit); without, the
          tenant's units come from a ``Delimiter='/'`` walk of its prefix instead;
        - with ``expired`` and dates in key order, a tenant whose listing reached a unit that
          ``expired`` refuses: every later key of it is as late or later.

        A tenant with nothing expired therefore costs at most its share of one page, and no
        key past a cut-off is read beyond the page that met it. Every key is parsed with the
        template; keys that do not parse name no unit.
        """
        head = template.prefix()
        parse = KeyParser(template)
        ordered = expired is not None and dates_in_key_order(template)
        depth = template.text.count("/") + (template.date_format or "").count("/") - head.count("/")
        names: set[str] = set()
        requests = 0
        start_after: str | None = None
        while True:
            restart: str | None = None
            for entries, last in self._pages(head, start_after):
                requests += 1
                finished: set[str | None] = set()  # tenants whose listing met a unit past the cut-off
                seen: set[str] = set()  # the units of this page
                for entry in entries:
                    parsed = parse(entry.key)
                    if parsed is None:
                        continue
                    seen.add(parsed[0])
                    if expired is None or expired(parsed[1]):
                        names.add(parsed[0])
                    elif ordered:
                        finished.add(tenant_group(entry.key, head))
                if last is None:
                    break
                restart = self._skip(template, head, depth, entries, last, seen, finished, expired is None, names)
                if restart is not None and restart > last:
                    break
                restart = None
            if restart is None:
                break
            start_after = restart
        log.info("Found %d unit(s) under %s in %d listing request(s)", len(names), head, requests)
        return names

    def _skip(self, template: Template, head: str, depth: int, entries: list[Entry], last: str, seen: set[str],
              finished: set[str | None], every: bool, names: set[str]) -> str | None:
        """Where :meth:`_unit_names` resumes after a full page, or None to read on."""
        group = tenant_group(last, head)
        if group is None:
            return None
        if group in finished:
            return past(group)
        if tenant_group(entries[0].key, head) != group or len(seen) >= DENSE_UNITS:
            return None  # a page spanning tenants, or many units of one: reading on is cheapest
        if every:
            names.update(n for n in self._walk(group, depth - 1) if template.parse(n, whole=True))
            return past(group)
        if len(seen) == 1:
            (unit,) = seen
            if unit in names and last.startswith(unit):
                return past(unit)  # the rest of this unit names nothing new
        return None

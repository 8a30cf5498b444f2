"""COS: noncurrent versions and delete markers, and the lifecycle rules that keep versions.

Read with ``GetBucketVersioning`` and ``GetBucketLifecycleConfiguration``. On a versioned
bucket the store deletes every version and delete marker of a selected key by its
``VersionId`` (``stores/cos_bucket.py``: ``ListObjectVersions``, then ``DeleteObjects``), so no
noncurrent version is left; a lifecycle rule's ``NoncurrentVersionExpiration`` (or
``NewerNoncurrentVersions``) applies to versions made after the delete. A server that does
not implement the lifecycle API (Swift's s3api answers NotImplemented) is said to be unread.
"""

from __future__ import annotations

from typing import Any

from include.retention.copies.values import DerivedCopy, unreadable

STORE = "cos"
NO_LIFECYCLE = ("NoSuchLifecycleConfiguration",)
NOT_IMPLEMENTED = ("NotImplemented", "MethodNotAllowed", "501")


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or type(exc).__name__)


def read_versioning(client: Any, bucket: str) -> str:
    """``Enabled``, ``Suspended`` or ``Off`` (never versioned)."""
    return str(client.get_bucket_versioning(Bucket=bucket).get("Status") or "Off")


def read_lifecycle(client: Any, bucket: str) -> list[dict[str, Any]] | str:
    """The lifecycle rules, ``[]`` when the bucket has none, or the error code that kept them unread."""
    try:
        return list(client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules") or [])
    except Exception as exc:  # botocore's ClientError; the code says which
        code = _code(exc)
        if code in NO_LIFECYCLE:
            return []
        return code


def versions_copy(bucket: str, status: str) -> DerivedCopy:
    read = {"bucket": bucket, "versioning": status}
    if status == "Off":
        return DerivedCopy(STORE, "noncurrent versions", "none",
                           f"bucket {bucket} is not versioned: a delete leaves no noncurrent version", read=read)
    return DerivedCopy(STORE, "noncurrent versions", "none",
                       f"bucket {bucket} is versioned ({status}): every version and delete marker of each deleted "
                       "key was deleted by its VersionId, and the re-count listed versions", read=read)


def lifecycle_copy(bucket: str, rules: list[dict[str, Any]] | str) -> DerivedCopy:
    copy = "lifecycle rules"
    if isinstance(rules, str):
        return unreadable(STORE, copy, f"GetBucketLifecycleConfiguration on {bucket} answered {rules}")
    keeping = []
    for rule in rules:
        if str(rule.get("Status", "Enabled")) != "Enabled":
            continue
        nve = rule.get("NoncurrentVersionExpiration") or {}
        if nve:
            keeping.append({"id": str(rule.get("ID") or ""), "noncurrent_days": nve.get("NoncurrentDays"),
                            "newer_noncurrent_versions": nve.get("NewerNoncurrentVersions")})
    read = {"bucket": bucket, "rules": len(rules), "noncurrent_rules": keeping}
    if not keeping:
        return DerivedCopy(STORE, copy, "none",
                           f"bucket {bucket}: {len(rules)} lifecycle rule(s), none keeps noncurrent versions", read=read)
    listed = "; ".join(f"rule {k['id'] or '?'}: noncurrent versions kept {k['noncurrent_days']} day(s)"
                       + (f", newest {k['newer_noncurrent_versions']} kept" if k["newer_noncurrent_versions"] else "")
                       for k in keeping)
    return DerivedCopy(STORE, copy, "none",
                       f"bucket {bucket}: {listed}. They keep versions made noncurrent by an overwrite; the delete "
                       "removed every version by id, so none of the deleted keys' versions is left to them", read=read)


def read_copies(client: Any, bucket: str) -> list[DerivedCopy]:
    return [versions_copy(bucket, read_versioning(client, bucket)), lifecycle_copy(bucket, read_lifecycle(client, bucket))]

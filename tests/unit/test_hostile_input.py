"""The hostile-input catalogue of docs/RELIABILITY.md, pure part: request validation and the policy file.

Every row of the table is a case here; the request rows run again on the real servers in
``tests/e2e/test_hostile_requests.py`` (nothing deleted) and the override and hold rows in
``tests/stores/test_admin.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from include.retention.requests.validation import RequestRejected, validate
from include.retention.crypto import RetentionCrypto
from include.retention.policy import DEFAULT_POLICY_PATH, Policy, PolicyError, load_policy
from tests.hostile_catalogue import (
    ENTRY_POINTS,
    PHONE,
    REQUEST_ENTRY_POINTS,
    Case,
    cases_of,
    edited_policy,
    load_catalogue,
    request_conf,
)

UTC = timezone.utc
RUN_AFTER = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
TENANT = "1600123"
KEYS = RetentionCrypto(b"unit-hash-key", b"unit-encryption-key", b"unit-certificate-key")


def params(*entry_points: str) -> list[object]:
    return [pytest.param(c, id=c.case_id) for c in cases_of(*entry_points)]


@pytest.mark.parametrize("case", params(*REQUEST_ENTRY_POINTS))
def test_hostile_request_is_refused_with_the_documented_error(policy: Policy, case: Case) -> None:
    with pytest.raises(RequestRejected) as refused:
        validate(policy, request_conf(case, TENANT), run_after=RUN_AFTER, tenant_exists=lambda t: t == TENANT,
                    active_holds=lambda t: [], subject_hash=KEYS.subject_hash)
    message = str(refused.value)
    assert case.error in message
    assert PHONE not in message and PHONE[3:] not in message  # the subject id is never echoed
    assert "subject_id" not in refused.value.fields


@pytest.mark.parametrize("case", params("policy file"))
def test_hostile_policy_file_is_refused_with_the_documented_error(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(edited_policy(case, DEFAULT_POLICY_PATH)), encoding="utf-8")
    monkeypatch.setenv("RETENTION_POLICY_PATH", str(path))  # what the DAGs and the CLI read
    with pytest.raises(PolicyError) as refused:
        load_policy()
    message = str(refused.value)
    assert case.error in message
    assert message.startswith(f"{path}: ") and "Fix: " in message  # names the file, the rule and the fix


def strings(value: object) -> list[str]:
    """Every string in a case's input (policy rows are edits, not values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in strings(v)] if isinstance(value, list) else []


def test_the_catalogue_covers_what_the_issue_lists() -> None:
    cases = load_catalogue()
    assert len(cases) >= 35
    assert {c.entry_point for c in cases} == set(ENTRY_POINTS)
    inputs = [text for c in cases if c.entry_point != "policy file" for text in strings(c.value("T"))]
    for char in ("'", '"', ";", "%", "_", "*", "?", "[", "\\", "\x00"):
        assert any(char in text for text in inputs), f"no case puts {char!r} in an id"
    sources = " ".join(c.source for c in cases)
    errors = " ".join(c.error for c in cases)
    assert any(len(text) > 128 for text in inputs), "no overlong string"
    assert "look-alikes" in errors and "\\u" in sources, "no Unicode look-alike"
    assert '""' in sources, "no empty string"
    for duration in ("-6", "0}", "100000", "1000000000"):
        assert duration in sources, f"no duration {duration}"
    assert "is in the future" in errors
    assert "unknown tenant" in errors and "unknown category" in errors
    assert "could match many" in errors and "outside its placeholders" in errors  # widening index patterns


def test_the_packaged_policy_is_not_refused() -> None:
    assert load_policy(DEFAULT_POLICY_PATH).categories  # the edits, not the base, cause every refusal

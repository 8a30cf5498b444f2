"""The demo's summary as text: a failed run is named and shown as such, and a certificate's
summary lines carry its checked signature (``devservers/demo_report.py``)."""

from __future__ import annotations

import re

from devservers.demo_report import RunResult, StoreTotal, certificate_summary, failed_runs, format_summary
from include.retention.crypto import RetentionCrypto
from include.retention.policy import Policy
from tests.unit.test_requests import KEYS, certificate


def test_a_failed_run_is_named_and_shown_as_such() -> None:
    results = [RunResult("retention_call_data", "retention_call_data", "r1", "success", 2.0, True),
               RunResult("deletion_requests: deletion DEMO-DEL-1", "deletion_requests", "r2", "success", 3.0, False,
                         "DEL-1", "request rejected"),
               RunResult("retention_log_data", "retention_log_data", "r3", "failed", 1.0, False)]
    lines = format_summary(results, {"r1": [StoreTotal("mysql", 1, 1234, 0, 0.25)],
                                     "r3": [StoreTotal("elasticsearch", 2, 0, 2, 0.5)]})
    assert failed_runs(results) == ["deletion_requests: deletion DEMO-DEL-1", "retention_log_data"]
    text = "\n".join(lines)
    assert re.search(r"retention_call_data\s+success\s+2.0s\s+mysql\s+1,234\s+1\s+0\s+0.2s", text)
    assert re.search(r"DEMO-DEL-1\s+not ok\s+3.0s\s+nothing was deleted", text) and "(request rejected)" in text
    assert re.search(r"retention_log_data\s+failed\s+1.0s\s+elasticsearch\s+0\s+2\s+2", text)


def test_a_certificate_shows_its_summary_lines_and_whether_it_verifies(policy: Policy) -> None:
    document = certificate(policy)
    lines = certificate_summary(document, KEYS)
    cert_id = document["certificate"]["certificate_id"]
    assert lines[0] == f"# Deletion certificate {cert_id}"
    assert any(line.startswith("- **Completed:**") and "**records deleted:** 5" in line for line in lines)
    assert lines[-1] == f"- **Check:** OK: {cert_id}: signature valid, contents consistent"
    assert not any(line.startswith("|") or line.startswith("##") for line in lines)  # no table: a summary
    other = certificate_summary(document, RetentionCrypto(b"x", b"y", b"another-certificate-key"))
    assert other[-1].startswith(f"- **Check:** INVALID: {cert_id}")

"""The e-mail about new unknown items, through the SLA monitor's notifier and address.

Airflow's ``SmtpNotifier`` on ``retention_smtp`` to the SLA address (``sla.recipient``). It
names each item (its scrubbed name), its flags and its counts; never a value.
"""

from __future__ import annotations

import html
import logging
import os
from typing import Any, Mapping, Sequence

from include.retention import sla
from include.retention.coverage.items import Finding

log = logging.getLogger(__name__)


def subject(findings: Sequence[Finding]) -> str:
    personal = sum(f.likely_personal for f in findings)
    return (f"[retention coverage] {len(findings)} new item(s) the policy does not cover"
            + (f", {personal} likely personal data" if personal else ""))


def body(findings: Sequence[Finding]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(f.id)}</td><td>{html.escape(', '.join(f.flags)) or '-'}</td>"
        f"<td>{f.item.counts.e164}</td><td>{f.item.counts.email}</td><td>{f.item.counts.sampled}</td></tr>"
        for f in findings
    )
    return (
        "<p>The daily coverage check found data no policy target names and no exemption explains. "
        "It is never purged and never reported until it is added to the policy or exempted "
        "(include/retention/coverage_exemptions.yaml, with a reason and an owner).</p>"
        "<table><tr><th>item</th><th>personal words in its names</th><th>phone-shaped values</th>"
        f"<th>e-mail-shaped values</th><th>values sampled</th></tr>{rows}</table>"
        "<p>Counts only: no sampled value is kept. The retention dashboard lists them under Coverage.</p>"
    )


def send(findings: Sequence[Finding], context: Mapping[str, Any], *, to: str,
         smtp_conn_id: str = sla.SMTP_CONN_ID) -> None:
    """One e-mail listing ``findings``."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from airflow.sdk import BaseHook

    sender = os.environ.get(sla.FROM_ENV) or BaseHook.get_connection(smtp_conn_id).extra_dejson.get("from_email")
    SmtpNotifier(to=to, from_email=sender or sla.DEFAULT_FROM, subject=subject(findings), html_content=body(findings),
                 smtp_conn_id=smtp_conn_id).notify(dict(context))  # type: ignore[arg-type]
    log.info("Sent the coverage alert: %d new unknown item(s)", len(findings))

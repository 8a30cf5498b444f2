"""A signed certificate as people read it: Markdown and self-contained HTML.

Pure: a document in, text out. It imports nothing that reads or writes a store, the ledger
or a request, which is why it is the one part of ``certificates`` the dashboard may import.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

from include.retention.request_states import KIND_EXPIRY

#: The command the rendering tells a reader to check the signature with.
VERIFY_COMMAND = "python -m include.retention.cli.verify_certificate verify <file.json>"


def _rows(doc: Mapping[str, Any]) -> list[tuple[str, ...]]:
    body = doc["certificate"]
    rows = []
    for d in body["deletions"]:
        detail = ""
        if d.get("kind") == KIND_EXPIRY:
            details = d.get("details") or {}
            detail = f"expire by {details.get('backups_expire_by', '?')}"
            if details.get("purged_backup_days"):
                detail += f"; days {' to '.join(details['purged_backup_days'])} purged"
        if (d.get("details") or {}).get("withheld_for_hold"):
            detail += ("; " if detail else "") + (
                f"kept under another subject's legal hold: {d['details']['withheld_for_hold']}")
        rows.append((f"{d['category']}.{d['target']}", d["store"], d.get("location") or "", d.get("method") or "",
                     str(d["deleted"]), str(d["remaining"]), d.get("verified_at") or "", detail))
    return rows


def _approval_line(approval: Mapping[str, Any]) -> str:
    """Who approved the request (four eyes), when, after whom, and why."""
    line = f"approved by {approval['approved_by']} at {approval['approved_at']}"
    if approval.get("triggered_by"):
        line += f" (the run was triggered by {approval['triggered_by']})"
    return line + (f": {approval['reason']}" if approval.get("reason") else "")


def _ledger_lines(ledger: dict[str, Any] | None) -> list[str]:
    """Where the certificate's rows sit in the ledger's hash chains (docs/PROOF.md)."""
    if not ledger:
        return []
    parts = []
    for chain, listed in (ledger.get("positions") or {}).items():
        seqs = [p["seq"] for p in listed if p.get("seq") is not None]
        if listed:
            parts.append(f"{chain} {len(listed)} row(s)" + (f" at entries {min(seqs)} to {max(seqs)}" if seqs else ""))
    return ["", "Ledger chains: " + ("; ".join(parts) or "no rows") + " (checked by "
            "`python -m include.retention.ledger verify`)."]


def _copy_lines(copies: Mapping[str, Any] | None) -> list[str]:
    """Each derived copy a store keeps, and when it ends, as read from its server (docs/PROOF.md)."""
    if not copies:
        return []
    lines = ["", "## Derived copies", "", f"Read from the servers at {copies.get('read_at')}.", ""]
    for c in copies.get("copies") or []:
        late = " **Outlives the due date.**" if c.get("outlives_due") is True else ""
        lines.append(f"- **{c['store']}, {c['copy']}:** {c['statement']}.{late}")
    if copies.get("outlive_due"):
        lines += ["", f"A derived copy may outlive the due date {copies.get('due_at')}."]
    return lines


def render_markdown(doc: Mapping[str, Any]) -> str:
    """A human-readable Markdown rendering of a signed certificate."""
    body, sig = doc["certificate"], doc["signature"]
    req, out, backups = body["request"], body["outcome"], body["backups"]
    subject = req["subject"]
    lines = [
        f"# Deletion certificate {body['certificate_id']}",
        "",
        f"- **Request:** {req['request_id']} ({req['request_type']}), reference `{req['reference']}`, "
        f"requested by {req['requested_by']}",
        f"- **Tenant:** {req['tenant_id']}",
        f"- **Subject:** {subject['type'] + ' with keyed hash `' + subject['keyed_hash'] + '`' if subject else 'the whole tenant'}",
        f"- **Categories:** {', '.join(req['categories'])}",
        f"- **Received:** {req['received_at']}; **due:** {req['due_at']}",
        *([f"- **Approved:** {_approval_line(body['approval'])}"] if body.get("approval") else []),
        f"- **Completed:** {out['completed_at']} ({'within' if out['within_window'] else 'AFTER'} the window); "
        f"**records deleted:** {out['records_deleted']}; **remaining:** {out['records_remaining']}"
        + (f"; **kept under another subject's legal hold:** {out['records_withheld']}"
           + (f" (holds {', '.join(f'#{i}' for i in out['withheld_under_holds'])})"
              if out.get("withheld_under_holds") else "")
           if out.get("records_withheld") else ""),
        "",
        "## What was deleted, where",
        "",
        "| step | store | where | method | deleted | remaining | verified at | note |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _rows(doc)]
    lines += ["", "## Backups", "", backups["statement"] + "."]
    if backups.get("purged_backup_days"):
        lines.append(f"Purged early ({backups['purged_because']}): "
                     + "; ".join(f"{t}: {' to '.join(d)}" for t, d in backups["purged_backup_days"].items()) + ".")
    lines += _copy_lines(body.get("derived_copies"))
    lines += ["", "## Runs", ""]
    lines += [f"- `{r['run_id']}` ({r['dag_id']}), {r['first_at']} to {r.get('last_at', r['first_at'])}"
              for r in body["runs"]]
    audit = body["audit"]
    lines += [
        "",
        f"Audit: {audit['rows']} row(s) in `{audit['table']}`, {audit['deleted']} record(s) deleted, "
        f"{audit['failed']} failed attempt(s).",
        *_ledger_lines(body.get("ledger")),
        "",
        f"Late-arriving data: {body['late_data']['statement']} ({body['late_data']['swept_until']}).",
        "",
        f"Verification: {body['verification']['method']} ({body['verification']['verified_at']}).",
        "",
        f"Issued {body['issued_at']} under policy version {body['policy']['version']} "
        f"(sha256 `{body['policy']['sha256'][:16]}…`).",
        "",
        f"Signature: {sig['algorithm']}, key id `{sig['key_id']}`, value `{sig['value']}`. Check it with "
        f"`{VERIFY_COMMAND}`.",
        "",
    ]
    return "\n".join(lines)


def render_html(doc: Mapping[str, Any]) -> str:
    """A self-contained HTML rendering of a signed certificate."""
    body, sig = doc["certificate"], doc["signature"]
    req, out, backups = body["request"], body["outcome"], body["backups"]
    e = html.escape
    subject = req["subject"]
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in _rows(doc))
    copies = "".join(f"<li><b>{e(c['store'])}, {e(c['copy'])}:</b> {e(c['statement'])}"
                     + (" <b>Outlives the due date.</b>" if c.get("outlives_due") is True else "") + "</li>"
                     for c in (body.get("derived_copies") or {}).get("copies") or [])
    runs = "".join(f"<li><code>{e(r['run_id'])}</code> {e(r['first_at'] or '')}</li>" for r in body["runs"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(body['certificate_id'])}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3em .5em;font-size:.9em}}code{{font-size:.85em}}</style></head><body>
<h1>Deletion certificate {e(body['certificate_id'])}</h1>
<dl>
<dt>Request</dt><dd>{e(req['request_id'])} ({e(req['request_type'])}), reference <code>{e(req['reference'])}</code>, requested by {e(req['requested_by'])}</dd>
<dt>Tenant</dt><dd>{e(req['tenant_id'])}</dd>
<dt>Subject</dt><dd>{e(subject['type'] + ', keyed hash ' + subject['keyed_hash']) if subject else 'the whole tenant'}</dd>
<dt>Received / due</dt><dd>{e(req['received_at'])} / {e(req['due_at'])}</dd>
{'<dt>Approved</dt><dd>' + e(_approval_line(body['approval'])) + '</dd>' if body.get('approval') else ''}
<dt>Completed</dt><dd>{e(out['completed_at'])}: {out['records_deleted']} record(s) deleted, {out['records_remaining']} remaining</dd>
</dl>
<h2>What was deleted, where</h2>
<table><tr><th>step</th><th>store</th><th>where</th><th>method</th><th>deleted</th><th>remaining</th><th>verified at</th><th>note</th></tr>
{rows}</table>
<h2>Backups</h2><p>{e(backups['statement'])}.</p>
{'<h2>Derived copies</h2><ul>' + copies + '</ul>' if body.get('derived_copies') else ''}
<h2>Runs</h2><ul>{runs}</ul>
<p>Signature {e(sig['algorithm'])}, key id <code>{e(sig['key_id'])}</code>: <code>{e(sig['value'])}</code></p>
</body></html>
"""

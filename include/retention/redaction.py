"""Keeping personal data out of what is written down: error texts, audit details, logs.

A selection may carry raw subject ids (a deletion's subject, the subjects held around it);
:func:`scrub` takes them out of a text, with E.164 numbers and e-mail addresses, before it
reaches the ledger, a log line or an XCom.
"""

from __future__ import annotations

import re

from include.retention.selections import ExpiredSelection, Selection, SubjectSelection

MAX_ERROR_CHARS = 2000
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def subject_ids(selection: Selection) -> list[str]:
    """Raw subject ids a selection carries (never to be written anywhere)."""
    if isinstance(selection, (SubjectSelection, ExpiredSelection)):
        held = [subject_id for _tenant, _type, subject_id in selection.exclude_subjects]
        return [selection.subject_id, *held] if isinstance(selection, SubjectSelection) else held
    return []


def scrub(text: str, selection: Selection) -> str:
    """``text`` without the selection's subject ids, phone numbers or e-mail addresses."""
    for subject_id in sorted(subject_ids(selection), key=len, reverse=True):
        if len(subject_id) >= 3:  # shorter ids are not identifying, and would shred the text
            text = text.replace(subject_id, "[subject]")
    text = _E164.sub("[number]", text)
    text = _EMAIL.sub("[email]", text)
    return text[:MAX_ERROR_CHARS]

"""Time, in one place: the ledger's naive-UTC columns, the policy's calendar days, days left.

MySQL ``DATETIME`` columns hold naive UTC. Code above the ledger works with aware instants
only: :func:`to_naive_utc` is the one way in, :func:`from_naive_utc` the one way out.
Calendar arithmetic (days and months in the policy's time zone) is pure and clock-free;
:func:`wall_clock` exists for timestamps *of the record* (events, audit rows), never for
deciding what is deleted: that comes from the run.
"""

from __future__ import annotations

import calendar
import math
from datetime import date, datetime, time, timedelta, timezone, tzinfo

UTC = timezone.utc


def to_naive_utc(instant: datetime) -> datetime:
    """An aware instant as the naive UTC value a ``DATETIME`` column holds."""
    if instant.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return instant.astimezone(UTC).replace(tzinfo=None)


def from_naive_utc(value: datetime | None) -> datetime | None:
    """A ``DATETIME`` column's value (naive UTC) as an aware UTC instant; None stays None."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def wall_clock() -> datetime:
    """The wall-clock instant, for the record only (events, audit). It never decides what is deleted."""
    return datetime.now(UTC)


def local_day(instant: datetime, tz: tzinfo) -> date:
    """The calendar day of an aware instant in ``tz``."""
    if instant.tzinfo is None:
        raise ValueError("the as-of instant must be timezone-aware (it comes from the run)")
    return instant.astimezone(tz).date()


def start_of_day(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def day_span(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The aware [start, end) of a calendar day in ``tz``."""
    return start_of_day(day, tz), start_of_day(day + timedelta(days=1), tz)


def month_span(month: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The aware [start, end) of the calendar month containing ``month`` in ``tz``."""
    first = month.replace(day=1)
    return start_of_day(first, tz), start_of_day(add_months(first, 1), tz)


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months, clamped to the end of a shorter month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def days_left(due_at: datetime, as_of: datetime) -> int:
    """Whole days from ``as_of`` to ``due_at``, rounded up: 7.0 and 6.5 days both read 7."""
    return math.ceil((due_at - as_of).total_seconds() / 86_400)

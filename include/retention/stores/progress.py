"""The counters of one streaming purge (COS, Redis), kept apart so that a failure part-way can report them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Progress:
    """Mutable counters of one purge, readable after a failure part-way.

    :param matched: records the listing matched (and the re-check accepted).
    :param deleted: records the store acknowledged as deleted.
    :param batches: delete requests sent (``DeleteObjects``, ``UNLINK``).
    :param requests: listing round trips (``ListObjects`` pages, ``SCAN`` replies).
    """

    matched: int = 0
    deleted: int = 0
    batches: int = 0
    requests: int = 0

"""Field checks every integration's snapshot files share."""

from __future__ import annotations

from datetime import datetime

CAPTURED_YEARS = (2000, 2100)  # a snapshot's capturedAt: "now" for the time rules


def timestamp_in(first: int, last: int):
    """An ISO-8601 timestamp with a time zone, in the years first..last-1 (outside: a typo, or a clock
    that would make every time rule fire)."""

    def check(value: str) -> str:
        shown = value if len(value) <= 40 else value[:37] + "..."
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{shown!r} is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{shown!r} has no timezone (use Z for UTC)")
        if not first <= parsed.year < last:
            raise ValueError(f"{shown!r} is outside the years {first} to {last - 1}")
        return value

    return check

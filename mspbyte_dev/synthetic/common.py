"""Time and ids of synthetic tenants: every timestamp is an age before one fixed capture."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

CAPTURED_AT = datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86_400


def guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def timestamp(age_seconds: int) -> str:
    return (CAPTURED_AT - timedelta(seconds=age_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def days(rng: random.Random, low: int, high: int) -> int:
    """An age in seconds between low and high days."""
    return rng.randint(low * DAY, high * DAY)

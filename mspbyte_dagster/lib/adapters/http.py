"""What the API clients of every integration share: how long to keep retrying, and what a read cost.

Every source system throttles (429) and has outages, and may say how long to wait in `Retry-After`;
one policy and one set of figures serve every client, so a tenant's read is bounded and measured the
same way whichever data source it reads.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Self

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    """How long one tenant's read may keep retrying before it fails."""

    max_attempts: int = 6  # per request
    base_delay: float = 1.0  # backoff without Retry-After: base * 2^(attempt - 1), jittered
    max_delay: float = 60.0
    max_total_wait: float = 600.0  # every wait of one tenant's read, added up
    timeout: float = 60.0  # one request

    def backoff(self, attempt: int) -> float:
        """Between half and all of the capped delay, so clients throttled together do not retry together."""
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not a secret

    def delay(self, headers: Mapping[str, str], attempt: int) -> float:
        """The server's Retry-After when it gave one, else backoff."""
        seconds = retry_after(headers)
        return seconds if seconds is not None else self.backoff(attempt)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds, or None when the answer gave none (or none readable)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


@dataclass
class ReadStats:
    """What reading one tenant cost: the figures of its snapshot's metadata."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    throttled_waits: int = 0
    waited_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_json(self) -> dict:
        figures = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        return {name: round(value, 2) if isinstance(value, float) else value for name, value in figures.items()}


class Connection:
    """The one pooled HTTP client every tenant of an integration's read goes through: `with` closes it."""

    http: httpx.Client

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

"""The time the services' schedulers read (notify's digests, triage's clocks and retention),
injectable so that tests move it.

`SystemClock` is the machine's UTC time; `ManualClock` stands still until it is moved, and
wakes whoever waits on it when it is, so a test moves the clock past a buyer's schedule and
waits for the digest, without sleeping. Times that leave the service are hours (`hour_of`):
a digest says the hour it was issued, never the second.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    async def wait(self, seconds: float) -> None:
        """Return after `seconds`, or earlier when the clock is moved (a manual clock)."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to (tests, benchmarks)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time is timezone-aware")
        self._now = start.astimezone(UTC)
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward and wake its waiters."""
        if delta < timedelta(0):
            raise ValueError("a clock does not go back")
        self._now += delta
        self._moved.set()

    async def wait(self, seconds: float) -> None:
        """Return when the clock is moved, or after `seconds` of real time at most (so a
        loop that waits on it still notices a stop)."""
        try:
            await asyncio.wait_for(self._moved.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._moved.clear()


def hour_of(moment: datetime) -> str:
    """`moment` truncated to the hour, ISO 8601 with Z (the time format of events)."""
    hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour.isoformat().replace("+00:00", "Z")

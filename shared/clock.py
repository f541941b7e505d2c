"""The time the services' schedulers read (notify's digests, triage's clocks and retention),
injectable so that tests move it, and the one way times are written as text.

`SystemClock` is the machine's UTC time; `ManualClock` stands still until it is moved, and
wakes whoever waits on it when it is, so a test moves the clock past a buyer's schedule and
waits for the digest, without sleeping. Times that leave the service are hours (`hour_of`):
a digest says the hour it was issued, never the second.

Stored times and scheduler keys are `iso_z` text ("2026-03-14T09:00:00Z": UTC, seconds, Z),
so that text order is time order; `parse_iso` reads them back. `run_every` is the loop of a
scheduler: a round, then a wait on the clock, for as long as the service runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from .aio import wait_at_most


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
        await wait_at_most(self._moved, seconds)
        self._moved.clear()


def hour_of(moment: datetime) -> str:
    """`moment` truncated to the hour, ISO 8601 with Z (the time format of events)."""
    return iso_z(moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0))


def iso_z(moment: datetime) -> str:
    """`moment` as stored text: UTC, to the second, with Z ("2026-03-14T09:00:00Z")."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """A stored time (`iso_z`, `hour_of`) as a timezone-aware UTC time; ValueError if it is
    not one, or names no zone."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a stored time names its zone")
    return moment.astimezone(UTC)


async def run_every(
    clock: Clock,
    seconds: float,
    round_fn: Callable[[], Awaitable[object]],
    log: logging.Logger,
    failure: str = "scheduler round failed",
) -> None:
    """A scheduler: `round_fn` now, then again each time `clock` moves or `seconds` pass,
    until cancelled. A failed round is logged by its type alone (its text may hold data)
    and the next round tries again: a scheduler outlives a store outage."""
    while True:
        try:
            await round_fn()
        except Exception as exc:  # noqa: BLE001 - see the docstring; cancellation passes
            log.warning(failure, extra={"error_type": type(exc).__name__})
        await clock.wait(seconds)

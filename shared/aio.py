"""Small asyncio helpers shared by the long-running loops (consumers, relay, integrator)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# Python 3.11's asyncio.wait_for loses a cancellation that arrives as the operation it wraps
# completes (CPython gh-86296, fixed in 3.12), and pymongo sends through it once the store
# has a socket timeout: a loop that swallowed its cancellation that way ran on for ever, and
# the stop waiting for it hung. Cancelling again after a while ends such a loop; a task's own
# clean-up on cancellation has that long. Our own code bounds its waits with asyncio.timeout
# (`wait_at_most`, `async with asyncio.timeout`), which has no such race.
RECANCEL_AFTER_S = 5.0


async def wait_at_most(event: asyncio.Event, seconds: float) -> None:
    """Return once `event` is set, or after `seconds`. A cancellation that arrives as the
    event is set is raised (asyncio.wait_for would return instead: above)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def honour_a_lost_cancellation() -> None:
    """Raise the cancellation a library swallowed (above) at the top of a loop's next turn:
    a busy loop (a consumer writing a poll) loses one often enough that waiting for the
    second cancel would slow every stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(
    task: asyncio.Task[Any] | None, recancel_after: float = RECANCEL_AFTER_S
) -> None:
    """Cancel a background task and wait until it has really stopped.

    Only the task's own cancellation is absorbed (an error it died of is raised): when the
    caller is cancelled while it waits (a stop bounded by `asyncio.timeout`, a shutdown),
    that propagates, so a stop that hangs times out instead of running on past its bound."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=recancel_after)
    if not task.cancelled():
        task.result()

"""Small asyncio helpers shared by the long-running loops (consumers, relay, integrator)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

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


BATCH_LIMIT = 32  # items per batch: on nx-27017 a command holds its database's one lock


class Batched(Generic[Item, Outcome]):
    """Calls that arrive while this process has a batch in flight wait for it, and go
    together in the next batch: natural batching, with no timer, so a lone call waits for
    nothing. On nx-27017 every command costs about 2 ms of the server's one process before
    its own work (docs/benchmarks.md), so concurrent requests stop paying it each.

    `send` gets a batch's items in arrival order and returns one outcome per item: a value,
    or the exception to raise in that item's caller; an exception `send` raises goes to
    every caller of the batch. A caller cancelled before its batch is sent is left out of
    it. A batch is sent only after each of its callers arrived, so a read made this way is
    as fresh as one of the caller's own."""

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[Sequence[Outcome | BaseException]]],
        limit: int = BATCH_LIMIT,
    ) -> None:
        self._send = send
        self._limit = limit
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Outcome:
        outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, outcome))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_while_waiting())
        return await outcome

    async def _send_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch = [entry for entry in self._waiting[: self._limit] if not entry[1].done()]
                del self._waiting[: self._limit]
                if batch:
                    await self._send_batch(batch)
        finally:
            self._sender = None

    async def _send_batch(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self._send([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, waiting in batch:
                waiting.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - it is each caller's to raise
            outcomes = [exc] * len(batch)
        for (_, waiting), outcome in zip(batch, outcomes, strict=True):
            if waiting.done():
                continue
            if isinstance(outcome, BaseException):
                waiting.set_exception(outcome)
            else:
                waiting.set_result(outcome)

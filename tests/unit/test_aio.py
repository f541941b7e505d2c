"""`cancel_and_wait` stops a background task, even one that swallowed its cancellation, and
a bound on the stop itself holds; `wait_at_most` never swallows one. `Batched` sends what
arrives while a batch is in flight together, each caller getting its own outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hotline.shared.aio import (
    Batched,
    cancel_and_wait,
    honour_a_lost_cancellation,
    wait_at_most,
)

pytestmark = pytest.mark.unit


async def test_it_returns_once_the_task_has_stopped() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def loop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(loop())
    await started.wait()
    await cancel_and_wait(task)
    assert stopped.is_set() and task.cancelled()


async def test_a_timeout_around_a_stop_that_hangs_times_out() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # takes its time to wind down

    task = asyncio.create_task(stubborn())
    await started.wait()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await cancel_and_wait(task)
    release.set()
    await asyncio.gather(task, return_exceptions=True)  # (cancelled again by the timeout)


async def _loses_one_cancellation(started: asyncio.Event, honours: bool) -> None:
    """A consumer's loop whose first cancellation a library swallowed."""
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass  # as Python 3.11's asyncio.wait_for does when what it wraps just completed
    while True:  # back to its next poll
        if honours:
            honour_a_lost_cancellation()
        await asyncio.Event().wait()  # a poll that brings nothing


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_loses_one_cancellation(started, honours=False))
    await started.wait()
    async with asyncio.timeout(5):
        await cancel_and_wait(task, recancel_after=0.1)
    assert task.cancelled()


async def test_a_loop_that_honours_a_lost_cancellation_stops_at_its_next_turn() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_loses_one_cancellation(started, honours=True))
    await started.wait()
    async with asyncio.timeout(1):  # well before the second cancel
        await cancel_and_wait(task, recancel_after=60)
    assert task.cancelled()


async def test_an_error_the_task_died_of_is_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("the store went away")

    task = asyncio.create_task(fails())
    await asyncio.wait([task])
    with pytest.raises(RuntimeError, match="the store went away"):
        await cancel_and_wait(task)


@pytest.mark.parametrize(
    "set_first", [True, False], ids=["set then cancelled", "cancelled then set"]
)
async def test_a_loop_waiting_at_most_is_cancelled_even_as_its_event_is_set(
    set_first: bool,
) -> None:
    """A relay's wait for its wake-up: cancelled in the moment it is woken, it stops (with
    asyncio.wait_for on Python 3.11 it returned and ran on, in both orders here)."""
    event, waiting = asyncio.Event(), asyncio.Event()

    async def relay_wait() -> str:
        waiting.set()
        await wait_at_most(event, 30)
        return "ran on"

    task = asyncio.create_task(relay_wait())
    await waiting.wait()  # set just before the wait begins, with no turn of the loop between
    if set_first:
        event.set()
        task.cancel()
    else:
        task.cancel()
        event.set()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_waiting_at_most_returns_when_set_or_after_the_time() -> None:
    event = asyncio.Event()
    async with asyncio.timeout(5):
        await wait_at_most(event, 0.05)  # not set: back after the time
        event.set()
        await wait_at_most(event, 30)  # set: back at once


# --- Batched: natural batching ------------------------------------------------------------


class Recorder:
    """A `send` that records its batches, and holds each one until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.sending = asyncio.Event()

    async def send(self, items: list[str]) -> list[str | BaseException]:
        self.batches.append(list(items))
        self.sending.set()
        await self.release.wait()
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


async def calls_made(batched: Batched[Any, Any], items: list[Any]) -> list[asyncio.Task[Any]]:
    """A task per item calling `batched`, returned once every one has made its call (a task
    makes it in its first step, before it waits for the outcome)."""
    made, count = asyncio.Event(), 0

    async def call(item: Any) -> Any:
        nonlocal count
        count += 1
        if count == len(items):
            made.set()
        return await batched(item)

    tasks = [asyncio.create_task(call(item)) for item in items]
    await made.wait()
    return tasks


async def test_calls_that_arrive_while_a_batch_is_in_flight_go_together_in_the_next() -> None:
    recorder = Recorder()
    batched = Batched(recorder.send)
    first = asyncio.create_task(batched("a"))
    await recorder.sending.wait()  # "a" went alone, at once
    later = await calls_made(batched, ["b", "c", "d"])
    recorder.release.set()
    assert await first == "A"
    assert await asyncio.gather(*later) == ["B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]


async def test_each_caller_gets_its_own_outcome_and_a_failed_batch_fails_only_its_callers() -> None:
    calls = 0

    async def send(items: list[str]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the server went away")
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]

    batched = Batched(send)
    with pytest.raises(ConnectionError):
        await batched("lost")
    good, bad = await asyncio.gather(batched("ok"), batched("bad-one"), return_exceptions=True)
    assert good == "OK"
    assert isinstance(bad, ValueError) and str(bad) == "bad-one"


async def test_a_caller_cancelled_before_its_batch_is_sent_is_left_out() -> None:
    recorder = Recorder()
    batched = Batched(recorder.send)
    first = asyncio.create_task(batched("a"))
    await recorder.sending.wait()
    given_up, kept = await calls_made(batched, ["gone", "kept"])
    given_up.cancel()
    recorder.release.set()
    assert await first == "A" and await kept == "KEPT"
    assert given_up.cancelled()
    assert recorder.batches == [["a"], ["kept"]]


async def test_a_call_never_shares_a_batch_sent_before_it_arrived() -> None:
    """A read made through Batched is as fresh as the caller's own: a value written after
    a batch was sent is seen by every call that arrived after the write."""
    value = 0
    reading = asyncio.Event()
    proceed = asyncio.Event()

    async def read(callers: list[None]) -> list[int]:
        seen = value
        reading.set()
        await proceed.wait()
        return [seen] * len(callers)

    batched: Batched[None, int] = Batched(read)
    before = asyncio.create_task(batched(None))
    await reading.wait()  # the read is in flight with the old value
    value = 1  # a write lands
    (after,) = await calls_made(batched, [None])  # arrives after the write
    proceed.set()
    assert await before == 0
    assert await after == 1


async def test_batches_are_at_most_the_limit() -> None:
    recorder = Recorder()
    recorder.release.set()
    batched = Batched(recorder.send, limit=3)
    results = await asyncio.gather(*(batched(str(n)) for n in range(7)))
    assert results == [str(n) for n in range(7)]
    assert [len(batch) for batch in recorder.batches] == [3, 3, 1]  # all arrived at once

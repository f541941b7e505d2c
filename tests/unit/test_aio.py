"""`cancel_and_wait` stops a background task, even one that swallowed its cancellation, and
a bound on the stop itself holds; `wait_at_most` never swallows one."""

from __future__ import annotations

import asyncio

import pytest

from hotline.shared.aio import cancel_and_wait, honour_a_lost_cancellation, wait_at_most

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

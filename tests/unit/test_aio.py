"""`cancel_and_wait` stops a background task, and a bound on the stop itself holds."""

from __future__ import annotations

import asyncio

import pytest

from hotline.shared.aio import cancel_and_wait

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

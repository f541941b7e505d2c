"""Small asyncio helpers shared by the long-running loops (consumers, relay, integrator)."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has really stopped.

    Only the task's own cancellation is absorbed: when the caller is cancelled while it
    waits (a stop bounded by `asyncio.timeout`, a shutdown), that propagates, so a stop that
    hangs times out instead of silently running on past its bound."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise

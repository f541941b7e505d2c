"""Waiting for a condition (never sleeping in place of one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None], timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; return it, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


async def async_wait_for(
    condition: Callable[[], Awaitable[T | None]], timeout: float = 30.0, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


def unless_busy(send: Callable[[], httpx.Response], what: str = "the call") -> httpx.Response:
    """`send()` until intake answers something other than 503 "busy" (its cap on receipt
    lookups of all clients together per second, refused after the proof of work is spent and
    before the case is read): a capacity answer a client is told to ask again after, so a
    test asks again. `send` must build a fresh request, with a new challenge, each time."""

    def answered() -> httpx.Response | None:
        response = send()
        return None if _busy(response) else response

    return wait_for(answered, timeout=30, what=f"{what} answered, not busy")


def _busy(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    try:
        return bool(response.json().get("code") == "busy")
    except (ValueError, AttributeError):  # not JSON, or not an object: another 503
        return False

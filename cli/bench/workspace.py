"""What every benchmark runs in: a temporary data directory with its own engines."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from hotline.shared.config import Settings

from ..engines import mongo
from ..engines.process import ManagedProcess, free_port


def say(message: str) -> None:
    """Progress on stderr, so that the figures on stdout stay clean."""
    click.echo(message, err=True)


@contextmanager
def workspace(mongo_url: str | None) -> Iterator[Settings]:
    """A temporary data directory and, unless `mongo_url`, our own nx-27017 in it."""
    data = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    process: ManagedProcess | None = None
    try:
        if mongo_url:
            settings = Settings(data=data, mongo_url=mongo_url)
        else:
            settings = Settings(data=data, mongo_port=free_port())
            say(f"starting nx-27017 on port {settings.mongo_port} in {data}")
            process = mongo.start(settings)
        yield settings
    finally:
        if process is not None:
            process.stop()
        shutil.rmtree(data, ignore_errors=True)


async def median_ms(rounds: int, run: Callable[[], Awaitable[int]]) -> float:
    """Median milliseconds of `run()` over `rounds` (after one warm-up run)."""
    await run()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)

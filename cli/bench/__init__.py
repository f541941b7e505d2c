"""`hotline bench ...`: benchmarks of the real components on this machine, each printing its
figures beside an anchor measured in the same run (one module per benchmark)."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from .alerts import bench_alerts
from .audit import bench_audit
from .browser import bench_browser
from .chart import bench_chart
from .consumers import bench_consumers
from .digests import bench_digests
from .intake import bench_intake
from .latency import bench_latency
from .pipeline import bench_pipeline
from .queue import bench_queue
from .relay import bench_relay
from .seal import bench_seal


@click.group()
def bench() -> None:
    """Benchmarks, on this machine, of the real components."""
    # A benchmark stopped with SIGTERM unwinds as on Ctrl-C: the engines and services it
    # started are stopped and its temporary folder removed (by their context managers).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    sys.exit(128 + signum)


bench.add_command(bench_alerts)
bench.add_command(bench_audit)
bench.add_command(bench_browser)
bench.add_command(bench_chart)
bench.add_command(bench_consumers)
bench.add_command(bench_digests)
bench.add_command(bench_intake)
bench.add_command(bench_latency)
bench.add_command(bench_pipeline)
bench.add_command(bench_queue)
bench.add_command(bench_relay)
bench.add_command(bench_seal)

"""`hotline bench ...`: benchmarks of the real components on this machine, each printing its
figures beside an anchor measured in the same run (one module per benchmark)."""

from __future__ import annotations

import click

from .alerts import bench_alerts
from .audit import bench_audit
from .browser import bench_browser
from .consumers import bench_consumers
from .digests import bench_digests
from .queue import bench_queue
from .relay import bench_relay
from .seal import bench_seal


@click.group()
def bench() -> None:
    """Benchmarks, on this machine, of the real components."""


bench.add_command(bench_alerts)
bench.add_command(bench_audit)
bench.add_command(bench_browser)
bench.add_command(bench_consumers)
bench.add_command(bench_digests)
bench.add_command(bench_queue)
bench.add_command(bench_relay)
bench.add_command(bench_seal)

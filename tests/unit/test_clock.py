"""The services' one time text (`iso_z`, `parse_iso`) and scheduler loop (`run_every`):
stored times sort as times, read back as the same UTC time, and a scheduler whose round
fails logs the failure's type (never its text) and runs its next round when the clock
moves."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hotline.shared.clock import ManualClock, hour_of, iso_z, parse_iso, run_every

WAIT = 10.0


def test_iso_z_is_utc_to_the_second_with_z() -> None:
    moment = datetime(2026, 3, 14, 11, 5, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert iso_z(moment) == "2026-03-14T09:05:09Z"
    assert hour_of(moment) == "2026-03-14T09:00:00Z"


def test_parse_iso_reads_back_what_iso_z_wrote() -> None:
    moment = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_iso(iso_z(moment)) == moment
    assert parse_iso("2026-03-14T09:00:00+02:00") == datetime(2026, 3, 14, 7, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-03-14T09:00:00", "not a time", ""])
def test_parse_iso_refuses_a_time_without_a_zone_or_no_time(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso(text)


def test_iso_z_text_order_is_time_order() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(seconds=seconds) for seconds in (0, 9, 10, 59, 3600, 86400)]
    texts = [iso_z(moment) for moment in moments]
    assert sorted(texts) == texts


async def test_a_failed_round_is_logged_by_its_type_and_the_next_round_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(datetime(2026, 3, 14, 9, tzinfo=UTC))
    rounds: list[datetime] = []
    first_round, second_round = asyncio.Event(), asyncio.Event()

    async def round_fn() -> None:
        rounds.append(clock.now())
        if len(rounds) == 1:
            first_round.set()
            raise KeyError("case 1234 of worker Li")  # text that must not be logged
        second_round.set()

    log = logging.getLogger("hotline.test.scheduler")
    with caplog.at_level(logging.WARNING, logger=log.name):
        scheduler = asyncio.create_task(run_every(clock, 3600, round_fn, log, "test round failed"))
        try:
            await asyncio.wait_for(first_round.wait(), WAIT)
            clock.advance(timedelta(minutes=1))  # wakes the scheduler long before 3600 s
            await asyncio.wait_for(second_round.wait(), WAIT)
        finally:
            scheduler.cancel()
            await asyncio.gather(scheduler, return_exceptions=True)
    assert rounds == [datetime(2026, 3, 14, 9, tzinfo=UTC), datetime(2026, 3, 14, 9, 1, tzinfo=UTC)]
    [record] = [r for r in caplog.records if r.name == log.name]
    assert record.getMessage() == "test round failed"
    assert getattr(record, "error_type", None) == "KeyError"
    assert "1234" not in record.getMessage() and record.exc_info is None
    assert scheduler.cancelled(), "cancelling the scheduler stops it"

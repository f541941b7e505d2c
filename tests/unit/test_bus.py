"""Record timestamps: what the bus gives Kafka is the event's hour, never a producer's clock."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from hotline.shared.bus import HOUR_MS, dead_letter_timestamp, record_timestamp
from hotline.shared.events import CaseStatusChanged, Event, new_event

# 2026-03-14 10:52:03.567 UTC, in ms: a producer's CreateTime as Kafka would keep it.
PRECISE_MS = int(datetime(2026, 3, 14, 10, 52, 3, 567_000, tzinfo=UTC).timestamp() * 1000)
HOUR_OF_IT = int(datetime(2026, 3, 14, 10, tzinfo=UTC).timestamp() * 1000)


def record(timestamp: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("hotline.case.triaged", 0, 7, timestamp, 0, b"k", b"v", None, 1, 1, [])


def test_a_record_timestamp_is_the_events_hour() -> None:
    event = new_event("case-1", CaseStatusChanged(status="open"))
    hour = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    assert record_timestamp(event) == int(hour.timestamp() * 1000)
    assert record_timestamp(event) % HOUR_MS == 0


def test_an_event_time_finer_than_the_hour_is_truncated() -> None:
    event = Event(
        type="case.status-changed",
        subject="case-1",
        time="2026-03-14T10:52:03Z",
        data={"status": "open"},
    )
    assert record_timestamp(event) == HOUR_OF_IT


def test_a_dead_letter_keeps_the_original_records_hour() -> None:
    assert dead_letter_timestamp(record(PRECISE_MS)) == HOUR_OF_IT


def test_a_dead_letter_of_a_record_without_timestamp_gets_an_hour() -> None:
    assert dead_letter_timestamp(record(-1)) % HOUR_MS == 0

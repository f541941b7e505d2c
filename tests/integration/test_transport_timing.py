"""What the transport and the engines keep of time: no more than the store, the hour.

The system is driven as its users drive it (CLI, services, real engines) until every declared
topic holds records; then a plain consumer, as any client of the broker's listener could,
reads every topic from the beginning. Every record the system wrote carries its event's hour
as a CreateTime timestamp, never its producer's clock in milliseconds.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from hotline.cli.engines import kafka
from hotline.cli.engines.local import LocalSystem
from hotline.cli.engines.process import EngineError
from hotline.shared.bus import make_producer, publish
from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.events import (
    DEAD_LETTER_TOPIC,
    CaseStatusChanged,
    ClockBreached,
    ClockStopped,
    EnvelopesDeleted,
    EventError,
    IncidentLinked,
    KeyRevoked,
    MessagePosted,
    new_event,
    parse_event,
)
from hotline.shared.keys import key_id, load_public_key
from hotline.shared.messages import message_routing
from hotline.shared.receipt import derive_receipt
from tests.support.cli import hotline, hotline_json
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

HOUR_MS = 3_600_000
CREATE_TIME = 0  # a record's timestamp_type: 0 CreateTime (its producer's), 1 LogAppendTime
Record: TypeAlias = ConsumerRecord[bytes, bytes]
# The date and time a log line starts with ("[2025-03-01 10:52:03,567] INFO ...").
LINE_TIME = re.compile(r"^\[?\d{4}-\d{2}-\d{2}[ T](\d{2}:\d{2}(?::\d{2})?)", re.MULTILINE)


def _topics() -> list[str]:
    return [spec["name"] for spec in kafka.declared_topics()]


def _partitions() -> list[TopicPartition]:
    return [
        TopicPartition(spec["name"], partition)
        for spec in kafka.declared_topics()
        for partition in range(spec["partitions"])
    ]


async def read_topics(
    settings: Settings, partitions: list[TopicPartition]
) -> dict[str, list[Record]]:
    """Every record of these partitions, read from the beginning by a plain consumer."""
    # `earliest`: with the default `latest`, the reset that `assign` starts can land after
    # `seek_to_beginning` and leave the positions at the end.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: dict[str, list[Record]] = {tp.topic: [] for tp in partitions}
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, batch in batches.items():
                records[tp.topic].extend(batch)
        return records
    finally:
        await consumer.stop()


async def topics_with_records(settings: Settings) -> set[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = _partitions()
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        return {tp.topic for tp in partitions if ends[tp] > starts[tp]}
    finally:
        await consumer.stop()


def _hour_ms(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time).timestamp() * 1000)


def _written_by_the_system(topic: str, record: Record) -> bool:
    """Records the services wrote: events, and every dead letter. Anything else on a topic
    was put there by hand (another test's deliberately malformed record, say)."""
    if topic == DEAD_LETTER_TOPIC:
        return True
    try:
        parse_event(record.value or b"")
    except EventError:
        return False
    return True


async def _publish_the_rest(
    settings: Settings, case_id: str, factory: str, buyer: str, buyer_key: Path, reply_key: bytes
) -> None:
    """Facts this module's flow does not make (a status change, a reply to the worker, a
    revocation, clocks stopped and breached, an incident, a deletion), published with the
    same `publish` the services use: every topic then holds a record whatever else the
    session ran (the suite runs as two sessions, scripts/test.sh)."""
    public_key = load_public_key(Path(f"{buyer_key}.pub"))
    message_id = str(uuid.uuid4())
    message = seal_envelope(
        b"We will visit the factory on Monday.",
        case_id=case_id,
        kind="content",
        routing=message_routing(message_id, "reply"),
        recipients={key_id(reply_key): reply_key},  # the worker's reply key, as triage seals
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        for event in (
            new_event(case_id, CaseStatusChanged(status="in-progress")),
            new_event(
                case_id,
                MessagePosted(
                    message_id=message_id,
                    kind="reply",
                    author_role="triage-analyst",
                    envelope=message,
                ),
            ),
            new_event(
                key_id(public_key),
                KeyRevoked(key_id=key_id(public_key), org=buyer, org_kind="buyer"),
            ),
            new_event(case_id, ClockStopped(clock="acknowledgement", met=True)),
            new_event(case_id, ClockBreached(clock="first-action", due=_this_hour())),
            new_event(
                case_id,
                IncidentLinked(incident=str(uuid.uuid4()), factory=factory, category="safety"),
            ),
            new_event(case_id, EnvelopesDeleted(scope="identity", policy="default", envelopes=[])),
        ):
            await publish(producer, event)
    finally:
        await producer.stop()


def _this_hour() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:00:00Z")


async def _send_poison(settings: Settings, topic: str) -> int:
    """A record that is no event, stamped with the hour like every record; its offset."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        sent = await producer.send_and_wait(
            topic, b"not an event", key=b"timing", timestamp_ms=int(hour.timestamp() * 1000)
        )
        offset: int = sent.offset
        return offset
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def every_topic_written(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Registry changes and keys by the CLI; a report, which triage escalates, notify puts
    in the buyer's digest and the operator reads (two disclosures); the facts no service
    announces yet published; one poison record dead-lettered. Returns once every declared
    topic holds records."""
    settings = system.settings
    suffix = uuid.uuid4().hex[:6]
    factory, buyer = f"F-TIME-{suffix.upper()}", f"buyer-timing-{suffix}"
    admin = password_token(settings, "admin", "admin")
    keydir = tmp_path_factory.mktemp("timing-keys")
    keys = {name: keydir / f"{name}.key" for name in ("operator", "buyer")}
    for path in keys.values():
        hotline("keys", "generate", "--out", str(path))
    hotline("admin", "factory", "add", factory, "--name", "Timing", "--country", "VN", token=admin)
    hotline(
        "admin", "operator-key", "add", "--public-key-file", f"{keys['operator']}.pub", token=admin
    )
    hotline(
        "admin",
        "buyer",
        "add",
        buyer,
        "--name",
        "Timing Buyer",
        "--public-key-file",
        f"{keys['buyer']}.pub",
        token=admin,
    )
    hotline("admin", "link", buyer, factory, token=admin)
    submitted = hotline_json(
        "submit", "--factory", factory, "--category", "safety", "--urgent", "--text", "blocked"
    )
    case_id = submitted["case_id"]
    operator = password_token(settings, "operator", "operator")
    wait_for(
        lambda: (
            hotline(
                "cases",
                "show",
                case_id,
                "--key",
                str(keys["operator"]),
                token=operator,
                check=False,
            ).returncode
            == 0
        ),
        timeout=60,
        what="the case at triage (its content disclosed to the operator)",
    )
    reply_key = derive_receipt(submitted["receipt"]).reply_public
    asyncio.run(_publish_the_rest(settings, case_id, factory, buyer, keys["buyer"], reply_key))
    poison_topic = "hotline.case.status-changed"
    poison_offset = asyncio.run(_send_poison(settings, poison_topic))

    def parked() -> bool:
        dead = asyncio.run(read_topics(settings, [TopicPartition(DEAD_LETTER_TOPIC, 0)]))
        origins = {
            (dict(r.headers)["topic"], dict(r.headers)["offset"]) for r in dead[DEAD_LETTER_TOPIC]
        }
        return (poison_topic.encode(), str(poison_offset).encode()) in origins

    wait_for(parked, timeout=90, what="the poison record in the dead-letter topic")
    wait_for(
        lambda: asyncio.run(topics_with_records(settings)) == set(_topics()),
        timeout=90,
        what="records on every topic",
    )
    return settings


async def test_every_record_carries_its_events_hour(every_topic_written: Settings) -> None:
    records = await read_topics(every_topic_written, _partitions())
    checked = {topic: 0 for topic in records}
    for topic, batch in records.items():
        for record in batch:
            if not _written_by_the_system(topic, record):
                continue
            where = f"{topic}[{record.partition}]@{record.offset}"
            assert record.timestamp_type == CREATE_TIME, where
            assert record.timestamp % HOUR_MS == 0, (
                f"{where}: timestamp {record.timestamp} "
                f"({datetime.fromtimestamp(record.timestamp / 1000, UTC):%H:%M:%S.%f}) "
                "is finer than the hour"
            )
            if topic != DEAD_LETTER_TOPIC:
                event = parse_event(record.value or b"")
                assert record.timestamp == _hour_ms(event.time), f"{where}: not the event's hour"
            checked[topic] += 1
    assert all(checked.values()), f"topics with no record checked: {checked}"


@pytest.mark.usefixtures("local_engines_only")
def test_engine_logs_keep_the_hour_and_no_login_addresses(
    every_topic_written: Settings,
) -> None:
    settings = every_topic_written
    with pytest.raises(EngineError):
        password_token(settings, "operator", "not the password")  # a failed login
    for name in ("kafka", "keycloak", "mongo"):
        text = (settings.logs_dir / f"{name}.log").read_text(errors="replace")
        times = {found.group(1) for found in LINE_TIME.finditer(text)}
        finer = sorted(t for t in times if not t.endswith(":00") or t.count(":") > 1)
        assert not finer, f"{name}.log has lines timed finer than the hour: {finer[:3]}"
        if name != "mongo":  # nx-27017 at WARNING may have written no line at all
            assert times, f"{name}.log has no timed line"
    keycloak_log = (settings.logs_dir / "keycloak.log").read_text(errors="replace")
    assert "LOGIN_ERROR" not in keycloak_log and "ipAddress" not in keycloak_log
    # H2's trace file would time each SQL error (a first start has several) to the microsecond.
    assert not list((settings.data / "keycloak").rglob("*.trace.db"))

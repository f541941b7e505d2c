"""A consumer process for tests/integration/test_bus.py: applies one effect per event, and with
KILL_AFTER_EFFECT set, kills itself (SIGKILL) right after the first effect is durable and
before the offset is committed, as a crash would."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from pymongo.errors import DuplicateKeyError

from hotline.shared.bus import ConsumerRunner, EachEvent, make_producer
from hotline.shared.config import Settings
from hotline.shared.events import Event
from hotline.shared.store import Store


async def record_effect(store: Store, collection: str, event: Event) -> None:
    """The effect under test: one document per event id (idempotent), plus a count of calls."""
    await store.db[f"{collection}_calls"].insert_one({"event_id": event.id})
    try:
        await store.db[collection].insert_one({"_id": event.id, "subject": event.subject})
    except DuplicateKeyError:
        pass


async def main(group: str, topic: str, collection: str) -> None:
    settings = Settings()
    store = Store(settings)
    producer = make_producer(settings)
    await producer.start()

    async def handle(event: Event) -> None:
        await record_effect(store, collection, event)
        if os.environ.get("KILL_AFTER_EFFECT"):
            os.kill(os.getpid(), signal.SIGKILL)

    runner = ConsumerRunner(settings, producer, group, [topic], EachEvent(handle))
    await runner.start()
    await asyncio.Event().wait()  # runs until killed


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

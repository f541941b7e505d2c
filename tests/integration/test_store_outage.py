"""The MongoDB wire server away (stopped, as a crash leaves it until the supervisor starts it
again): a request that needs the store is answered 503 with Retry-After, never a 500, and
answered as usual once the store is back. (Kafka away: test_kafka_outage.py.)"""

from __future__ import annotations

import httpx
import pytest

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.deps import STORE_RETRY_AFTER
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("local_engines_only")

UNKNOWN = "F-NOT-REGISTERED"


def recipients(system: LocalSystem) -> httpx.Response:
    return httpx.get(
        f"{system.settings.intake_url}/api/recipients/{UNKNOWN}", timeout=60, verify=tls()
    )


def test_a_request_while_the_store_is_away_is_a_503_then_answered_once_it_is_back(
    system: LocalSystem,
) -> None:
    assert recipients(system).status_code == 422, "an unknown factory, while the store is up"
    system.stop_engine("mongo")
    try:
        answer = recipients(system)
    finally:
        system.start_engine("mongo")
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == str(STORE_RETRY_AFTER)
    assert answer.json() == {"detail": "the database is unreachable: try again shortly"}
    wait_for(
        lambda: recipients(system).status_code == 422,
        timeout=60,
        what="intake answering from the store again",
    )

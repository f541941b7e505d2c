"""Buyers' webhooks against the running services (issue 19): a buyer registers an HTTPS
endpoint, and each urgent alert and digest reaches a real HTTPS receiver the test starts
(tests/support/webhook_receiver.py: a certificate of the session's CA, which the session's
notify trusts), signed, and once as the receiver sees it, through a receiver outage and a
notify restart; a delivery that never gets through is dead after the last try, and is
delivered when the buyer asks again. What a user would notice is checked: the receiver's
verified messages (Standard Webhooks signatures, checked with standardwebhooks), what the
buyer reads of its deliveries, the answers of the API and the CLI.

The session runs notify with a back-off schedule of seconds (six tries, WEBHOOK_SCHEDULE);
each receiver outage is a stopped server, its port closed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hotline.cli.engines.local import LocalSystem
from hotline.cli.engines.process import http_ready
from hotline.cli.http import tls
from hotline.notify.collections import COLLECTIONS as NOTIFY_COLLECTIONS
from hotline.notify.deliverer import Backoff
from hotline.notify.digest import check_digest_file
from hotline.notify.webhooks import webhooks as webhook_routes
from hotline.shared.auth import TokenVerifier, install_token_verifier
from hotline.shared.bus import make_producer
from hotline.shared.config import Settings
from hotline.shared.envelope import open_envelope
from hotline.shared.outbox import relay_for
from hotline.shared.reports import routing_metadata
from hotline.shared.roles import Role
from hotline.shared.service import Runtime
from hotline.shared.store import Store
from hotline.shared.tlog.note import Ed25519Verifier, parse_verifier_key
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Received, WebhookReceiver, session_ca

WAIT = 60.0
Document = dict[str, Any]


@dataclass
class Buyer:
    org: str
    user: str  # its password is its name
    party: Party  # the key pair registered for the org
    factory: str  # the factory it is linked to


@dataclass
class World:
    settings: Settings
    system: LocalSystem
    receiver: WebhookReceiver
    buyer: Buyer
    other: Buyer  # another brand, of another factory

    def call(self, user: str, method: str, path: str, body: Any = None) -> httpx.Response:
        token = password_token(self.settings, user, user)
        return httpx.request(
            method,
            f"{self.settings.notify_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            verify=tls(),
        )

    def register(self, buyer: Buyer, receiver: WebhookReceiver | None = None) -> tuple[str, str]:
        """A webhook of `buyer` at a path of its own of `receiver`; (webhook id, path)."""
        receiver = receiver or self.receiver
        path = f"/hooks/{uuid.uuid4().hex[:12]}"
        created = self.call(buyer.user, "POST", "/api/webhooks", {"url": receiver.url(path)})
        assert created.status_code == 201, created.text
        receiver.expect(path, created.json()["secret"])
        return created.json()["id"], path

    def deliveries(self, buyer: Buyer, webhook_id: str) -> dict[str, Document]:
        listed = self.call(buyer.user, "GET", f"/api/webhooks/{webhook_id}/deliveries")
        assert listed.status_code == 200, listed.text
        return {delivery["message_id"]: delivery for delivery in listed.json()}

    def vkey(self) -> Ed25519Verifier:
        text = httpx.get(f"{self.settings.notify_url}/vkey", timeout=30, verify=tls()).text.strip()
        verifier = parse_verifier_key(text)
        assert isinstance(verifier, Ed25519Verifier)
        return verifier


@pytest.fixture(scope="module")
def world(system: LocalSystem) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    admin.created("operator-keys", {"public_key": Party.new().public_b64})
    buyers = []
    for _ in range(2):
        factory, org, party = unique_factory_code(), unique_buyer_id(), Party.new()
        admin.created("factories", {"code": factory, "name": "Kestrel Toys", "country": "CN"})
        admin.created(
            "buyers", {"buyer_id": org, "name": org.title(), "public_key": party.public_b64}
        )
        admin.created("links", {"buyer_id": org, "factory": factory})
        buyers.append(Buyer(org, add_user(settings, Role.BUYER, org), party, factory))
    with WebhookReceiver(session_ca(settings.data)) as receiver:
        yield World(settings, system, receiver, *buyers)


def submit_urgent(world: World, buyer: Buyer) -> str:
    """An urgent report at the buyer's factory (critical, escalated at once); its case id."""
    submitted = hotline_json(
        "submit",
        "--factory",
        buyer.factory,
        "--category",
        "safety",
        "--urgent",
        "--text",
        "The fire exit on floor 3 is locked at night",
    )
    case_id: str = submitted["case_id"]
    return case_id


def arrived(receiver: WebhookReceiver, path: str, message_id: str) -> Received:
    received = receiver.wait_for(path, message_id, WAIT)
    assert received is not None, f"{message_id} did not reach {path} within {WAIT:.0f} s"
    return received


def digest_of(receiver: WebhookReceiver, path: str, case_id: str) -> tuple[str, Received]:
    """The digest delivered at `path` that lists the case: (its message id, the delivery)."""

    def found() -> tuple[str, Received] | None:
        for message_id, received in receiver.messages(path).items():
            if message_id.startswith("digest:") and case_id in str(received.payload):
                return message_id, received
        return None

    return wait_for(found, timeout=WAIT, what=f"a digest listing {case_id} at {path}")


# --- endpoints -------------------------------------------------------------------------------


REFUSED_EVERYWHERE = {
    "http://localhost:8443/hook": "must use https",
    "not a url at all": "https",
    "https://buyer:password@localhost/hook": "no user name or password",
    "https://10.1.2.3/hook": "private",
    "https://192.168.0.10/hook": "private",
    "https://169.254.169.254/latest": "link-local",
    "https://100.64.0.1/hook": "shared",
    "https://[fd00::1]/hook": "private",
    "https://[::ffff:10.0.0.1]/hook": "private",
    "https://no-such-host.invalid/hook": "does not resolve",
    "https://localhost:70000/hook": "port",
}


def test_only_https_urls_of_allowed_addresses_are_registered(world: World) -> None:
    for url, reason in REFUSED_EVERYWHERE.items():
        refused = world.call(world.buyer.user, "POST", "/api/webhooks", {"url": url})
        assert refused.status_code == 422, (url, refused.text)
        assert reason in refused.json()["detail"], (url, refused.json())
    listed = world.call(world.buyer.user, "GET", "/api/webhooks")
    assert listed.status_code == 200
    assert [hook["url"] for hook in listed.json()] == [], "a refused URL is not registered"
    # Development: a receiver on this machine (loopback) is allowed.
    local = world.call(world.buyer.user, "POST", "/api/webhooks", {"url": world.receiver.url("/x")})
    assert local.status_code == 201, local.text
    assert local.json()["secret"].startswith("whsec_")
    removed = world.call(world.buyer.user, "DELETE", f"/api/webhooks/{local.json()['id']}")
    assert removed.status_code == 204


@pytest.fixture
async def production_notify(
    test_settings: Settings, system: LocalSystem
) -> AsyncIterator[httpx.AsyncClient]:
    """Notify's webhook routes under production settings, on a database of their own (so no
    deliverer sees what they register), behind the session's real Keycloak tokens."""
    settings = test_settings.model_copy(
        update={"environment": "production", "mongo_db": f"webhooks_{uuid.uuid4().hex[:12]}"}
    )
    store = Store(settings, NOTIFY_COLLECTIONS)
    await store.ensure_indexes()
    producer = make_producer(settings)
    await producer.start()
    app = FastAPI()
    app.include_router(webhook_routes)
    app.state.runtime = Runtime(settings, store, producer, relay_for(store, producer))
    verifier = TokenVerifier(settings, "hotline-notify")
    install_token_verifier(app, verifier)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
            yield client
    finally:
        await verifier.aclose()
        await producer.stop()
        await store.drop_databases()
        await store.close()


async def test_production_refuses_loopback_too(
    world: World, production_notify: httpx.AsyncClient
) -> None:
    token = password_token(world.settings, world.buyer.user, world.buyer.user)
    headers = {"Authorization": f"Bearer {token}"}
    for url in (
        "https://localhost/hook",  # a name that resolves to a loopback address
        "https://127.0.0.1/hook",
        "https://127.8.9.10/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://10.1.2.3/hook",
    ):
        refused = await production_notify.post("/api/webhooks", json={"url": url}, headers=headers)
        assert refused.status_code == 422, (url, refused.text)
        assert "address" in refused.json()["detail"], refused.json()
    # A public address is allowed (registering it sends nothing).
    public = await production_notify.post(
        "/api/webhooks", json={"url": "https://93.184.215.14/hook"}, headers=headers
    )
    assert public.status_code == 201, public.text


def test_a_buyer_never_sees_nor_touches_another_buyers_webhooks(world: World) -> None:
    webhook_id, _ = world.register(world.buyer)
    other = world.other.user
    listed = world.call(other, "GET", "/api/webhooks")
    assert listed.status_code == 200 and webhook_id not in str(listed.json())
    assert world.call(other, "DELETE", f"/api/webhooks/{webhook_id}").status_code == 404
    for body in ({"dead": True}, {"delivery": f"{webhook_id}:alert:x"}):
        path = f"/api/webhooks/{webhook_id}/redeliver"
        assert world.call(other, "POST", path, body).status_code == 404
    deliveries = world.call(other, "GET", f"/api/webhooks/{webhook_id}/deliveries")
    assert deliveries.status_code == 404
    mine = world.call(world.buyer.user, "GET", "/api/webhooks")
    assert [hook["id"] for hook in mine.json() if hook["id"] == webhook_id] == [webhook_id]
    assert "secret" not in str(mine.json()), "a secret is shown once, at registration"
    assert world.call(world.buyer.user, "DELETE", f"/api/webhooks/{webhook_id}").status_code == 204


def test_of_concurrent_removals_of_a_webhook_one_removes_it_and_the_others_find_none(
    world: World,
) -> None:
    webhook_id, _ = world.register(world.buyer)
    token = password_token(world.settings, world.buyer.user, world.buyer.user)

    async def remove_three_times() -> list[int]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=60, verify=tls()) as client:
            url = f"{world.settings.notify_url}/api/webhooks/{webhook_id}"
            answers = await asyncio.gather(*(client.delete(url) for _ in range(3)))
        return sorted(answer.status_code for answer in answers)

    assert asyncio.run(remove_three_times()) == [204, 404, 404]
    listed = world.call(world.buyer.user, "GET", "/api/webhooks")
    assert webhook_id not in str(listed.json())


def test_the_cli_adds_lists_and_removes_a_webhook(world: World) -> None:
    token = password_token(world.settings, world.buyer.user, world.buyer.user)
    url = world.receiver.url("/cli")
    created = hotline_json("webhooks", "add", url, token=token)
    assert created["url"] == url and created["secret"].startswith("whsec_")
    plain = hotline("webhooks", "list", token=token).stdout
    assert created["id"] in plain and created["secret"] not in plain
    listed = hotline_json("webhooks", "list", token=token)
    assert [hook["id"] for hook in listed] == [created["id"]]
    assert hotline("webhooks", "remove", created["id"], token=token).returncode == 0
    assert hotline_json("webhooks", "list", token=token) == []
    gone = hotline("webhooks", "remove", created["id"], token=token, check=False)
    assert gone.returncode == 1 and "404" in gone.stderr


# --- deliveries ------------------------------------------------------------------------------


def test_an_urgent_report_reaches_the_buyers_webhook_signed_with_its_envelope(
    world: World,
) -> None:
    webhook_id, path = world.register(world.buyer)
    other_id, other_path = world.register(world.other)
    case_id = submit_urgent(world, world.buyer)

    alert = arrived(world.receiver, path, f"alert:{case_id}").payload
    assert {k: alert[k] for k in ("type", "case_id", "factory", "severity", "urgent")} == {
        "type": "alert",
        "case_id": case_id,
        "factory": world.buyer.factory,
        "severity": "critical",
        "urgent": True,
    }
    routing = routing_metadata(
        alert["factory"], alert["categories"], alert["urgent"], alert["language"]
    )
    opened = open_envelope(
        alert["content"], private_key=world.buyer.party.private, case_id=case_id, routing=routing
    )
    assert opened == b"The fire exit on floor 3 is locked at night"

    message_id, delivered = digest_of(world.receiver, path, case_id)
    checked = check_digest_file(delivered.payload, world.vkey())
    assert message_id == f"digest:{world.buyer.org}:{checked.seq}"
    assert checked.buyer == world.buyer.org and checked.body.reason == "urgent"
    assert case_id in [item.case_id for item in checked.body.items]

    endpoint = world.receiver.endpoints[path]
    assert endpoint.unverified == 0 and endpoint.duplicates == 0, "signed, and sent once"
    records = world.deliveries(world.buyer, webhook_id)
    assert records[f"alert:{case_id}"]["status"] == "delivered"
    assert records[message_id]["status"] == "delivered"
    assert world.receiver.messages(other_path) == {}, "another brand's endpoint gets nothing"
    for hook in (webhook_id, other_id):
        owner = world.buyer if hook == webhook_id else world.other
        world.call(owner.user, "DELETE", f"/api/webhooks/{hook}")


def test_a_receiver_outage_is_ridden_out_and_each_message_arrives_once(world: World) -> None:
    receiver = WebhookReceiver(session_ca(world.settings.data))  # not started: an outage
    webhook_id, path = world.register(world.buyer, receiver)
    case_id = submit_urgent(world, world.buyer)
    alert_id = f"alert:{case_id}"

    def failed_twice() -> Document | None:
        delivery = world.deliveries(world.buyer, webhook_id).get(alert_id)
        return delivery if delivery and delivery["attempts"] >= 2 else None

    failing = wait_for(failed_twice, timeout=WAIT, what="two failed attempts of the alert")
    assert failing["status"] == "pending" and failing["last_error"] == "ConnectError"
    with receiver:
        arrived(receiver, path, alert_id)
        digest_id, _ = digest_of(receiver, path, case_id)
        records = world.deliveries(world.buyer, webhook_id)
        assert records[alert_id]["status"] == "delivered" and records[alert_id]["attempts"] >= 3
        assert records[digest_id]["status"] == "delivered"
        # The receiver answers 503 twice (busy), then takes the next alert.
        receiver.fail_next(path, 2)
        second = submit_urgent(world, world.buyer)
        arrived(receiver, path, f"alert:{second}")
        digest_of(receiver, path, second)
    endpoint = receiver.endpoints[path]
    assert endpoint.refused == 2 and endpoint.duplicates == 0 and endpoint.unverified == 0
    assert set(endpoint.messages) >= {alert_id, digest_id, f"alert:{second}"}
    world.call(world.buyer.user, "DELETE", f"/api/webhooks/{webhook_id}")


def test_a_dead_delivery_is_kept_and_redelivered_on_request(world: World) -> None:
    receiver = WebhookReceiver(session_ca(world.settings.data))  # not started: nobody answers
    webhook_id, path = world.register(world.buyer, receiver)
    case_id = submit_urgent(world, world.buyer)
    tries = int(world.settings.webhook_attempts)

    def all_dead() -> dict[str, Document] | None:
        found = world.deliveries(world.buyer, webhook_id)
        done = found and all(delivery["status"] == "dead" for delivery in found.values())
        return found if done and f"alert:{case_id}" in found and len(found) >= 2 else None

    dead = wait_for(all_dead, timeout=WAIT, what="the alert and the digest dead")
    assert all(delivery["attempts"] == tries for delivery in dead.values())
    token = password_token(world.settings, world.buyer.user, world.buyer.user)
    [listed] = [h for h in hotline_json("webhooks", "list", token=token) if h["id"] == webhook_id]
    assert (listed["dead"], listed["pending"]) == (len(dead), 0)

    with receiver:
        result = hotline("webhooks", "redeliver", "--dead", "--webhook", webhook_id, token=token)
        assert f"{len(dead)} dead deliveries queued again" in result.stdout
        arrived(receiver, path, f"alert:{case_id}")
        digest_id, _ = digest_of(receiver, path, case_id)
        wait_for(
            lambda: all(
                v["status"] == "delivered"
                for v in world.deliveries(world.buyer, webhook_id).values()
            ),
            timeout=WAIT,
            what="both delivered",
        )
        # One delivered message asked again: sent again with its webhook-id, seen once.
        requests = receiver.endpoints[path].requests
        delivery_id = f"{webhook_id}:alert:{case_id}"
        hotline("webhooks", "redeliver", delivery_id, token=token)
        wait_for(
            lambda: receiver.endpoints[path].requests > requests,
            timeout=WAIT,
            what="the redelivery",
        )
    endpoint = receiver.endpoints[path]
    assert set(endpoint.messages) == set(dead) and digest_id in dead
    assert endpoint.duplicates == 1, "the receiver recognised the redelivered webhook-id"
    world.call(world.buyer.user, "DELETE", f"/api/webhooks/{webhook_id}")


def test_deliveries_survive_a_notify_restart(world: World) -> None:
    receiver = WebhookReceiver(session_ca(world.settings.data))
    webhook_id, path = world.register(world.buyer, receiver)
    first = submit_urgent(world, world.buyer)
    wait_for(
        lambda: world.deliveries(world.buyer, webhook_id).get(f"alert:{first}", {}).get("attempts"),
        timeout=WAIT,
        what="a failed attempt before the restart",
    )
    notify = world.system.services["notify"]
    healthz = http_ready(f"{world.settings.notify_url}/healthz")
    notify.stop()
    try:
        second = submit_urgent(world, world.buyer)  # waits in Kafka while notify is down
        with receiver:
            notify.start().wait_until(healthz, 90.0, what="notify's /healthz")
            for case_id in (first, second):
                arrived(receiver, path, f"alert:{case_id}")
                digest_of(receiver, path, case_id)
    finally:
        if not notify.running():
            notify.start().wait_until(healthz, 90.0, what="notify's /healthz")
    endpoint = receiver.endpoints[path]
    assert endpoint.duplicates == 0 and endpoint.unverified == 0
    alerts = {m for m in endpoint.messages if m.startswith("alert:")}
    assert alerts == {f"alert:{first}", f"alert:{second}"}
    world.call(world.buyer.user, "DELETE", f"/api/webhooks/{webhook_id}")


def test_no_secret_reaches_notifys_log(world: World) -> None:
    created = world.call(
        world.buyer.user, "POST", "/api/webhooks", {"url": world.receiver.url("/s")}
    )
    assert created.status_code == 201
    secret = created.json()["secret"]
    world.call(world.buyer.user, "DELETE", f"/api/webhooks/{created.json()['id']}")
    log = (world.settings.logs_dir / "notify.log").read_text(errors="replace")
    assert log.strip(), "notify writes its log here"
    for form in (secret, secret.removeprefix("whsec_")):
        assert form not in log


def test_the_backoff_is_exponential_with_full_jitter(test_settings: Settings) -> None:
    schedule = {"webhook_backoff_base": 1.0, "webhook_backoff_max": 6 * 3600.0}
    backoff = Backoff(test_settings.model_copy(update=schedule))
    for tries, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 512.0), (40, 6 * 3600.0)):
        waits = [backoff.after(tries) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits), tries
        assert max(waits) > ceiling / 2, "spread over the whole window, not a fixed delay"


def test_bench_alerts_prints_its_figures(world: World) -> None:
    lines = hotline("bench", "alerts", "--reports", "3", "--json").stdout.splitlines()
    figures = [json.loads(line) for line in lines]
    assert [f["figure"] for f in figures] == [
        "alert latency p50",
        "alert latency p99",
        "alert latency p99",
    ]
    assert [f["anchor"] for f in figures] == [
        "raw HTTPS hop p50",
        "raw HTTPS hop p99",
        "issue 19's p99 target",
    ]
    assert all(f["unit"] == "ms" and f["value"] > 0 and f["anchor_value"] > 0 for f in figures)

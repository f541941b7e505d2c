"""The webhook deliverer: a task of every notify process that sends the due deliveries.

All of its state is in the store (`notify_deliveries`), so a restart, or another replica,
carries on where it stopped:
- due = pending with `next_attempt` (ms since the epoch) in the past. A process claims a
  due delivery by moving its `next_attempt` a lease ahead (LEASE_MS) in one guarded write,
  so two replicas never send it at once; if the process dies while sending, the lease
  expires and the delivery is due again. What this process's webhook consumer queues is
  written claimed already and handed over (`take`): sent first, without a claim's write
  (on the urgent path every write queues behind the others on the store). On an orderly
  stop, the deliveries still in flight are given STOP_GRACE_S to finish, and the rest (and
  those handed over and not started) are released (due at once) for the next process.
- one attempt: log the hand-out of the message's envelopes first (once per message; if the
  audit log cannot take it, nothing is sent and the attempt does not count), check the
  endpoint's address again (endpoints.py, and connect to the address checked), sign with
  `standardwebhooks` (`webhook-id` = the message id, `webhook-timestamp`,
  `webhook-signature: v1,...`), POST the payload, and read only the status: 2xx is
  delivered; anything else (a status, a timeout, a refused connection or certificate) fails.
- a failed attempt is tried again after an exponential back-off with full jitter (tenacity's
  `wait_random_exponential`: uniform in [0, min(max, base * 2^(n-1))] after the n-th try,
  HOTLINE_WEBHOOK_BACKOFF_BASE / _MAX); after HOTLINE_WEBHOOK_ATTEMPTS tries it is dead: the
  record stays, and the buyer can have it redelivered.

Delivery is at least once: a receiver de-duplicates by `webhook-id`, which is the same for
every attempt and redelivery of a message. A finished delivery keeps no precise time (its
`finished` hour only): an alert's delivery time would tell when the worker reported.

Requests use the system's CAs plus HOTLINE_WEBHOOK_CA_FILE, follow no redirect, ignore the
proxy variables of the environment (the address check must hold for the connection made),
and open one connection per attempt (a pooled connection to an address could carry a
request for another host name).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import math
import secrets
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pymongo import ReturnDocument
from standardwebhooks import Webhook
from tenacity import RetryCallState, Retrying, wait_random_exponential

from hotline.shared.aio import cancel_and_wait, wait_at_most
from hotline.shared.config import Settings
from hotline.shared.disclosure import DisclosureNotRecorded, disclose
from hotline.shared.events import Principal, coarse_now
from hotline.shared.roles import Role
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .collections import (
    NOTIFY_DELIVERIES,
    NOTIFY_DIGESTS,
    NOTIFY_WEBHOOK_MESSAGES,
    NOTIFY_WEBHOOKS,
)
from .digests import hand_out
from .endpoints import EndpointRefused, Target, checked_targets

log = logging.getLogger("hotline.notify.webhooks")

LEASE_MS = 60_000  # a claimed delivery is due again after this, if its process died
IDLE_S = 1.0  # longest sleep between passes (redeliveries, other replicas' work)
MIN_PAUSE_S = 0.01  # shortest: a pass never spins
IN_FLIGHT = 16  # attempts at once per process: a slow receiver does not hold up the others
STOP_GRACE_S = 3.0
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "hotline-webhooks/1"


# httpx logs every request's URL at INFO, which the logging policy keeps for the engine
# clients; a buyer's endpoint URL may carry a token of theirs, so the deliverer's own
# requests are left out (what was delivered, and how, is in the store).
_SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("webhook_sending", default=False)


class _NoDeliveryLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _SENDING.get()


def _quiet_httpx() -> None:
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _NoDeliveryLines) for f in httpx_log.filters):
        httpx_log.addFilter(_NoDeliveryLines())


def now_ms() -> int:
    """The deliverer's clock: `next_attempt` is in milliseconds since the epoch."""
    return int(time.time() * 1000)


def lease() -> dict[str, Any]:
    """The fields of a claim: the delivery is due again after LEASE_MS unless its claimer
    records the attempt first."""
    return {"next_attempt": now_ms() + LEASE_MS, "claim": secrets.token_hex(8)}


def status_fields(endpoint: str, status: str) -> dict[str, str]:
    """A delivery's status, and the key its endpoint's deliveries of that status share."""
    return {"status": status, "endpoint_status": f"{endpoint}:{status}"}


def trusted_context(settings: Settings) -> ssl.SSLContext:
    """The system's CAs plus HOTLINE_WEBHOOK_CA_FILE's (an error at start-up if unreadable)."""
    context = ssl.create_default_context()
    if settings.webhook_ca_file:
        try:
            context.load_verify_locations(cafile=settings.webhook_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise RuntimeError(
                f"HOTLINE_WEBHOOK_CA_FILE={settings.webhook_ca_file} is not a readable PEM "
                f"CA bundle ({type(exc).__name__})"
            ) from None
    return context


def signed_headers(secret: str, message_id: str, payload: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, payload),
    }


class Backoff:
    """Seconds to wait after the n-th failed try: full jitter (tenacity's wait strategy,
    which is a function of the attempt number only, so the schedule can live in the store)."""

    def __init__(self, settings: Settings) -> None:
        self._wait = wait_random_exponential(
            multiplier=settings.webhook_backoff_base, max=settings.webhook_backoff_max
        )
        self._retrying = Retrying()

    def after(self, tries: int) -> float:
        state = RetryCallState(self._retrying, None, (), {})
        state.attempt_number = max(1, tries)
        return float(self._wait(state))


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. `counts`: it was the receiver's try (not our audit log's)."""

    delivered: bool = False
    status: int | None = None
    error: str | None = None
    counts: bool = True
    endpoint_gone: bool = False


class Deliverer:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        db = runtime.store.db
        self.deliveries = db[NOTIFY_DELIVERIES.name]
        self.messages = db[NOTIFY_WEBHOOK_MESSAGES.name]
        self.endpoints = db[NOTIFY_WEBHOOKS.name]
        self.backoff = Backoff(self.settings)
        self.context = trusted_context(self.settings)  # at start-up: a bad CA file stops it
        _quiet_httpx()
        self._wake = asyncio.Event()
        self._in_flight: dict[str, tuple[asyncio.Task[None], str]] = {}
        self._taken: deque[Document] = deque()  # claimed by `enqueue`, not started yet

    def take(self, claimed: Sequence[Document]) -> None:
        """Send these deliveries, queued claimed for this process (`webhooks.enqueue`),
        before looking for others that are due."""
        self._taken.extend(claimed)
        if claimed:
            self._wake.set()

    async def run(self) -> None:
        """The background task: start what is due, sleep until something is, until stopped."""
        client = httpx.AsyncClient(
            verify=self.context,
            timeout=TIMEOUT,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"user-agent": USER_AGENT},
        )
        try:
            while True:
                try:
                    await self._start_due(client)
                    pause = await self._until_due()
                except Exception as exc:  # noqa: BLE001 - the store may be away: next pass
                    log.warning("deliverer pass failed", extra={"error_type": type(exc).__name__})
                    pause = IDLE_S
                await wait_at_most(self._wake, pause)
                self._wake.clear()
        finally:
            await self._stop_in_flight()
            await client.aclose()

    async def _start_due(self, client: httpx.AsyncClient) -> None:
        while self._taken and len(self._in_flight) < IN_FLIGHT:
            handed = self._taken.popleft()
            if handed["_id"] in self._in_flight or handed["next_attempt"] <= now_ms():
                continue  # its lease ran out while it waited: claimed again as any due one
            self._start(client, handed)
        room = IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            return
        now = now_ms()
        due = (
            self.deliveries.find({"next_attempt": {"$lte": now}}, {"next_attempt": 1})
            .sort("next_attempt", 1)
            .limit(room)
        )
        for doc in await due.to_list(room):
            if doc["_id"] in self._in_flight:
                continue
            claimed = await self.deliveries.find_one_and_update(
                {"_id": doc["_id"], "status": "pending", "next_attempt": doc["next_attempt"]},
                {"$set": lease()},
                return_document=ReturnDocument.AFTER,
            )
            if claimed is None:
                continue  # another process claimed it, or it was removed
            self._start(client, claimed)

    def _start(self, client: httpx.AsyncClient, claimed: Document) -> None:
        task = asyncio.create_task(self._deliver(client, claimed), name="webhook-delivery")
        self._in_flight[claimed["_id"]] = (task, claimed["claim"])
        task.add_done_callback(functools.partial(self._finished, claimed["_id"]))

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.warning("delivery attempt failed", extra={"error_type": type(error).__name__})
        self._wake.set()  # room for the next one

    async def _until_due(self) -> float:
        """Seconds until the next pending delivery is due (IDLE_S at most); IDLE_S when no
        more can be started now (an attempt that ends wakes the loop)."""
        if len(self._in_flight) >= IN_FLIGHT:
            return IDLE_S
        first = await self.deliveries.find_one(
            {"next_attempt": {"$gt": 0}}, {"next_attempt": 1}, sort=[("next_attempt", 1)]
        )
        if first is None:
            return IDLE_S
        return min(IDLE_S, max(MIN_PAUSE_S, (int(first["next_attempt"]) - now_ms()) / 1000))

    async def _stop_in_flight(self) -> None:
        """Let attempts in flight finish for a moment; release the others' claims, and
        those of the deliveries taken and not started."""
        in_flight = dict(self._in_flight)
        if in_flight:
            await asyncio.wait([task for task, _ in in_flight.values()], timeout=STOP_GRACE_S)
        unsent = [(doc["_id"], doc["claim"]) for doc in self._taken]
        self._taken.clear()
        for key, (task, claim) in in_flight.items():
            if not task.done():
                await cancel_and_wait(task)
                unsent.append((key, claim))
        for key, claim in unsent:
            await self.deliveries.update_one(
                {"_id": key, "claim": claim},
                {"$set": {"next_attempt": now_ms()}, "$unset": {"claim": ""}},
            )

    async def _deliver(self, client: httpx.AsyncClient, delivery: Document) -> None:
        outcome = await self._attempt(client, delivery)
        await self._record(delivery, outcome)

    async def _attempt(self, client: httpx.AsyncClient, delivery: Document) -> Outcome:
        endpoint = await self.endpoints.find_one({"_id": delivery["endpoint"]})
        if endpoint is None:
            return Outcome(endpoint_gone=True)
        message = await self.messages.find_one({"_id": delivery["message"]})
        if message is None:
            return Outcome(error="message-missing")
        try:
            await disclose_message(self.runtime, message)
        except DisclosureNotRecorded:
            return Outcome(error="audit-log-unavailable", counts=False)
        try:
            targets = await checked_targets(endpoint["url"], self.settings)
        except EndpointRefused:
            return Outcome(error="address-refused")
        payload: str = message["payload"]
        signed = signed_headers(
            endpoint["secret"], message["message_id"], payload, datetime.now(UTC)
        )
        outcome = Outcome(error="no-address")
        for target in targets:
            outcome = await self._post(client, target, signed, payload)
            if outcome.error != "ConnectError":
                break  # answered, or failed after connecting: not another address's turn
        return outcome

    async def _post(
        self, client: httpx.AsyncClient, target: Target, signed: dict[str, str], payload: str
    ) -> Outcome:
        headers = {**signed, **target.headers, "content-type": "application/json"}
        _SENDING.set(True)  # this task's own context: other requests still log
        try:
            async with client.stream(
                "POST",
                target.url,
                content=payload.encode(),
                headers=headers,
                extensions=target.extensions,
            ) as response:
                status = response.status_code  # the body is never read
        except httpx.HTTPError as exc:
            return Outcome(error=type(exc).__name__)
        if 200 <= status < 300:
            return Outcome(delivered=True, status=status)
        return Outcome(status=status, error=f"http-{status}")

    async def _record(self, delivery: Document, outcome: Outcome) -> None:
        """The attempt's outcome, if this process still holds the claim."""
        mine = {"_id": delivery["_id"], "claim": delivery["claim"]}
        if outcome.endpoint_gone:
            await self.deliveries.delete_one(mine)
            return
        tries = delivery["attempts"] + (1 if outcome.counts else 0)
        seen: dict[str, Any] = {
            "attempts": tries,
            "last_status": outcome.status,
            "last_error": outcome.error,
        }
        if outcome.delivered or tries >= self.settings.webhook_attempts:
            status = "delivered" if outcome.delivered else "dead"
            await self.deliveries.update_one(
                mine,
                {
                    "$set": {
                        **seen,
                        **status_fields(delivery["endpoint"], status),
                        "finished": coarse_now(),
                    },
                    "$unset": {"next_attempt": "", "claim": ""},
                },
            )
            if not outcome.delivered:
                log.warning(
                    "webhook delivery dead", extra={"attempt": tries, "error_type": outcome.error}
                )
            return
        wait_ms = int(self.backoff.after(tries) * 1000)
        await self.deliveries.update_one(
            mine,
            {"$set": {**seen, "next_attempt": now_ms() + wait_ms}, "$unset": {"claim": ""}},
        )


async def disclose_message(runtime: Runtime, message: Document) -> None:
    """Log the hand-out of the envelopes `message` carries, once, before it is first sent;
    DisclosureNotRecorded if the audit log cannot take it now (nothing is sent then).

    The principal is the buyer's organisation (no user: an endpoint is the organisation's).
    An alert's content envelope is disclosed once per alert; a digest's envelopes once per
    digest, by the digest's own `disclosed` flag, whoever gets it first (a pull or a webhook).
    A crash between the disclosure and its flag discloses again, never skips."""
    if message["disclosed"]:
        return
    principal = Principal(role=Role.BUYER, org=message["buyer"], subject=None)
    if message["message_id"].startswith("digest:"):
        digest = await runtime.store.db[NOTIFY_DIGESTS.name].find_one(
            {"_id": message["source"]}, {"body": 1, "disclosed": 1}
        )
        if digest is None:  # fail closed: never send envelopes whose hand-out is not logged
            raise DisclosureNotRecorded()
        await hand_out(runtime, [digest], principal)  # once per digest, as a pull does
    else:
        alert = json.loads(message["payload"])
        if alert.get("content") is not None:
            await disclose(runtime, alert["case_id"], alert["content"], "content", principal)
    await runtime.store.db[NOTIFY_WEBHOOK_MESSAGES.name].update_one(
        {"_id": message["_id"]}, {"$set": {"disclosed": True}}
    )

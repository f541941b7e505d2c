"""The operator console in Chromium, on a phone: an operator signs in through Keycloak, finds a
report in the queue, claims it, opens it with their key file, writes a note, acknowledges
and answers the worker, and moves the case to resolved; nothing readable leaves the browser.

The report is submitted with `hotline submit` (with a name and contact), whose receipt the
test keeps, as the worker would: the reply key it derives is the worker's, so the test
checks that what the console sealed to the worker opens with it, and only with it. The
operator is a Keycloak user of this module's own, with a key file `hotline keys generate`
wrote and registered as an operator key. Every request the browser sends, to any origin, is
recorded and searched for the key file and for every word that was typed or opened. The
page runs under its real CSP (never bypassed), and nothing in the browser is rewritten.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, Request, expect
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.envelope import EnvelopeError, envelope_hash, open_envelope
from hotline.shared.events import EventError, EventType, parse_event, topic_for
from hotline.shared.keys import b64encode, key_id, load_private_key
from hotline.shared.messages import message_routing
from hotline.shared.receipt import DerivedReceipt, derive_receipt
from hotline.shared.reports import routing_metadata
from hotline.shared.roles import Role
from hotline.shared.store import Databases
from hotline.shared.web import PAGE_CSP
from tests.support.browser import Watch, chromium, origin_of, phone, screenshot, storage_left
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.registry import AdminApi, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import wait_for

Document = dict[str, Any]
WAIT = 60.0
DISCLOSURES = topic_for(EventType.ENVELOPE_DISCLOSED)


def unique_words(prefix: str) -> str:
    """A word that occurs nowhere else (what the test searches every request for)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# --- the system's side: an operator with a key file, a factory, a report ----------------------


@dataclass
class Desk:
    """This module's operator (a Keycloak user and a registered key file), its factory, and
    the report submitted there with the worker's receipt."""

    settings: Settings
    mongo: Databases[Collection[Document]]
    user: str  # user name = password
    key_file: Path
    public_key_file: Path
    factory: str
    case_id: str
    worker: DerivedReceipt
    report: str
    identity: str
    secrets: list[str] = field(default_factory=list)  # every word that must never be sent

    @property
    def triage(self) -> str:
        return self.settings.triage_url

    @property
    def private_key(self) -> bytes:
        return load_private_key(self.key_file)

    def token(self, user: str | None = None) -> str:
        name = user or self.user
        return password_token(self.settings, name, name)

    def subject(self) -> str:
        payload = self.token().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])

    def call(self, method: str, path: str, body: Any = None, user: str | None = None) -> Any:
        response = httpx.request(
            method,
            f"{self.triage}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=60,
            verify=tls(),
        )
        assert response.status_code < 300, response.text
        return response.json()

    def status(self) -> str:
        """The case's status as the queue lists it (no envelope is handed out for it)."""
        listed = httpx.get(
            f"{self.triage}/api/cases",
            params={"factory": self.factory},
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60,
            verify=tls(),
        )
        assert listed.status_code == 200, listed.text
        [case] = [c for c in listed.json()["cases"] if c["case_id"] == self.case_id]
        return str(case["status"])

    def stored_messages(self) -> list[Document]:
        """The case's messages as triage stores them (envelopes to the worker included)."""
        found = self.mongo.triage_messages.find({"case_id": self.case_id})
        return sorted(found, key=lambda doc: (doc["seq"], doc["_id"]))


@pytest.fixture(scope="module")
def desk(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    settings = system.settings
    admin = AdminApi(settings)
    key_file = tmp_path_factory.mktemp("keys") / "operator.key"
    hotline("keys", "generate", "--out", str(key_file))
    public_key_file = key_file.parent / "operator.key.pub"
    operator_public = public_key_file.read_text().splitlines()[1]
    admin.created("operator-keys", {"public_key": operator_public})
    operator_kid = key_id(base64.b64decode(operator_public))
    factory = unique_factory_code()
    admin.created("factories", {"code": factory, "name": "Kestrel Garments", "country": "CN"})
    wait_for(
        lambda: (
            operator_kid
            in httpx.get(
                f"{settings.intake_url}/api/recipients/{factory}", timeout=30, verify=tls()
            ).json()["content"]
        ),
        timeout=WAIT,
        what="intake offering this module's operator key",
    )
    report = f"Wages unpaid for three months {unique_words('zqconsole')}"
    identity = f"Li Wei, dormitory 4 {unique_words('zqname')}"
    submitted = hotline_json(
        "submit",
        "--factory", factory,
        "--category", "wages",
        "--text", report,
        "--identity", identity,
    )  # fmt: skip
    case_id = submitted["case_id"]
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        mongo = Databases(client, settings.mongo_db)
        wait_for(
            lambda: mongo.triage_cases.find_one({"_id": case_id}),
            timeout=WAIT,
            what="the case at triage",
        )
        yield Desk(
            settings=settings,
            mongo=mongo,
            user=add_user(settings, Role.OPERATOR),
            key_file=key_file,
            public_key_file=public_key_file,
            factory=factory,
            case_id=case_id,
            worker=derive_receipt(submitted["receipt"]),
            report=report,
            identity=identity,
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# --- the browser's side -------------------------------------------------------------------


@dataclass
class Bodies:
    """Every request the context sent, to any origin (Keycloak's included): URL and body."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def record(self, request: Request) -> None:
        self.sent.append((request.url, request.post_data_buffer or b""))

    def holding(self, secret: bytes) -> list[str]:
        return [url for url, body in self.sent if secret in body or secret in url.encode()]

    def posted_to(self, path: str) -> list[Document]:
        """The JSON bodies posted to URLs ending in `path`."""
        return [json.loads(body) for url, body in self.sent if url.endswith(path) and body]


def watch_bodies(context: BrowserContext) -> Bodies:
    bodies = Bodies()
    context.on("request", bodies.record)
    return bodies


def messages_of(page: Page) -> dict[str, str]:
    """The page's own sentences (its translated messages), by key."""
    found: dict[str, str] = json.loads(page.locator("script#messages").text_content() or "{}")
    return found


def fill(template: str, **values: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def sign_in(page: Page, user: str) -> None:
    """Click "Sign in" and sign in as `user` in the window that opens (which the page
    closes); the queue is then shown."""
    with page.expect_popup() as opened:
        page.locator("button#sign-in").click()
    popup = opened.value
    popup.locator("input#username").fill(user)
    popup.locator("input#password").fill(user)
    popup.locator("#kc-login").click()
    popup.wait_for_event("close", timeout=60_000)
    expect(page.locator("section#signed-in")).to_be_visible(timeout=60_000)
    expect(page.locator("#queue-summary")).not_to_be_empty(timeout=60_000)
    expect(page.locator("p#error")).to_be_empty()


def load_key(page: Page, key_file: Path, name: str) -> None:
    payload = FilePayload(
        name=name, mimeType="application/octet-stream", buffer=key_file.read_bytes()
    )
    page.locator("input#key-file").set_input_files(payload)


def fits_the_phone(page: Page) -> bool:
    fits: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return fits


def case_notice(page: Page, text: str) -> None:
    expect(page.locator("#case-notice")).to_have_text(text, timeout=30_000)
    expect(page.locator("#case-error")).to_be_empty()


def move_to(page: Page, status: str, reason: str | None) -> None:
    page.locator("select#status-to").select_option(status)
    page.locator("input#status-reason").fill(reason or "")
    page.locator("button#change-status").click()


def write(page: Page, form: str, text: str, kind: str | None = None) -> None:
    if kind is not None:
        page.locator("select#message-kind").select_option(kind)
    page.locator(f"#{form}-text").fill(text)
    page.locator(f"#{form}-form button[type=submit]").click()


def message_texts(page: Page) -> dict[str, str]:
    """kind -> the text the conversation shows (the last message of each kind)."""
    shown = {}
    for item in page.locator("#messages-list li.message[data-kind]").all():
        shown[item.get_attribute("data-kind") or ""] = item.locator(".message-text").inner_text()
    return shown


def assert_nothing_kept(page: Page, triage: str) -> None:
    """No cookie of triage's origin, no web storage, IndexedDB, cache or service worker.
    (Keycloak's own cookies, on its path of the same host, are Keycloak's session.)"""
    left = storage_left(page)
    left["cookies"] = [c["name"] for c in page.context.cookies([f"{triage}/console/"])]
    assert not any(left.values()), f"the browser keeps: {left}"


def assert_only_triage_and_keycloak(watch: Watch, keycloak: str) -> None:
    elsewhere = [url for url in watch.off_origin() if origin_of(url) != keycloak]
    assert not elsewhere, f"requests left triage and Keycloak: {elsewhere}"
    assert not watch.csp_violations, f"CSP violations: {watch.csp_violations}"
    assert not watch.page_errors, f"uncaught errors: {watch.page_errors}"
    # The refusals the test provokes (409, 422) are answers the page shows, not errors.
    refused = {"409", "422"}
    ours = [
        e
        for e in watch.console_errors
        if (watch.origin in e or e.startswith("worker:"))
        and not any(f"status of {code}" in e for code in refused)
    ]
    assert not ours, f"console errors: {ours}; failed responses: {watch.failed_responses}"


def disclosed_to(desk: Desk, subject: str) -> set[tuple[str, str]]:
    """(envelope class, envelope hash) of every disclosure of the case to `subject`."""
    # Playwright's sync API holds this thread's event loop: the topic is read on another.
    with ThreadPoolExecutor(1) as thread:
        records = thread.submit(asyncio.run, records_on(desk.settings, DISCLOSURES)).result()
    found = set()
    for raw in records:
        try:
            event = parse_event(raw)
        except EventError:
            continue  # other tests' poison records
        principal = event.data["principal"]
        if event.subject == desk.case_id and principal["subject"] == subject:
            found.add((event.data["envelope_class"], event.data["envelope_hash"]))
    return found


# --- the operator's day -------------------------------------------------------------------


def test_an_operator_works_a_case_in_the_console_and_nothing_readable_leaves_the_browser(
    desk: Desk, browser: Browser
) -> None:
    keycloak = origin_of(desk.settings.keycloak_issuer)
    note = f"Called the factory's HR, no answer {unique_words('zqnote')}"
    acknowledgement = f"We have your report and are reading it {unique_words('zqack')}"
    reply = f"Do you know which payroll months are missing? {unique_words('zqreply')}"
    reason = "wages paid in full, confirmed on site"
    desk.secrets += [desk.report, desk.identity, note, acknowledgement, reply]
    row = f'#case-list li.case-row[data-case="{desk.case_id}"]'

    with phone(browser, desk.triage, locale="en-GB") as (page, watch):
        bodies = watch_bodies(page.context)
        response = page.goto(f"{desk.triage}/console/")
        assert response is not None and response.status == 200
        # The pages' CSP, with Keycloak's token endpoint the one other place to connect.
        assert response.headers["content-security-policy"] == PAGE_CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {keycloak}"
        )
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        messages = messages_of(page)
        expect(page.locator("#workspace")).to_be_hidden()

        # 1. Sign in; the queue, filtered to this factory, holds the report.
        sign_in(page, desk.user)
        expect(page.locator("#who")).to_contain_text(desk.user)
        page.locator("input#filter-factory").fill(desk.factory)
        page.locator("select#filter-status").select_option("received")
        page.locator("button#apply-filters").click()
        expect(page.locator("#case-list li.case-row")).to_have_count(1)
        expect(page.locator(row)).to_have_attribute("data-status", "received")
        expect(page.locator(row)).to_contain_text(desk.factory)
        page.evaluate("document.fonts.ready.then(() => true)")
        assert fits_the_phone(page), "nothing is wider than the 360 px screen"
        screenshot(page, "console-queue.png")

        # 2. Open it: without the key, nothing is readable; claim it.
        page.locator(f"{row} button").click()
        expect(page.locator("section#case")).to_be_visible()
        expect(page.locator("#case-id")).to_have_text(desk.case_id)
        expect(page.locator("#content-text")).to_have_text(messages["text-locked"])
        page.locator("button#claim").click()
        case_notice(page, messages["claimed"])
        expect(page.locator('#case-fields [data-field="assignee"] dd')).to_have_text(
            messages["you"]
        )

        # 3. The key file: the public one is refused, the private one opens the report.
        load_key(page, desk.public_key_file, "operator.key.pub")
        expect(page.locator("p#error")).to_have_text(messages["key-public-key"])
        load_key(page, desk.key_file, "operator.key")
        expect(page.locator("#content-text")).to_have_text(desk.report)
        expect(page.locator("#identity-text")).to_have_text(desk.identity)
        expect(page.locator("p#error")).to_be_empty()

        # 4. A note, an acknowledgement, a reply: each sealed in the browser, then shown.
        write(page, "note", note)
        case_notice(page, messages["note-added"])
        write(page, "message", acknowledgement, kind="acknowledgement")
        case_notice(page, messages["message-sent"])
        # The acknowledgement acknowledges the case (triage's consumer applies it).
        wait_for(lambda: desk.status() == "acknowledged", timeout=WAIT, what="acknowledged")
        write(page, "message", reply, kind="reply")
        case_notice(page, messages["message-sent"])
        assert message_texts(page) == {
            "note": note,
            "acknowledgement": acknowledgement,
            "reply": reply,
        }

        # 5. The status, step by step. Another operator moves it to investigating first:
        # the page shows triage's 409 and the case as it is now.
        moved = {"status": "investigating"}
        desk.call("POST", f"/api/cases/{desk.case_id}/status", moved, user="operator")
        move_to(page, "investigating", None)
        expect(page.locator("#case-error")).to_contain_text("the case is already investigating")
        expect(page.locator("section#case")).to_have_attribute("data-status", "investigating")
        move_to(page, "remediation", "the factory agreed a payment plan")
        case_notice(page, fill(messages["status-changed"], status=messages["status-remediation"]))
        move_to(page, "resolved", None)  # no reason: triage's 422 says one is needed
        expect(page.locator("#case-error")).to_contain_text("a reason is required")
        expect(page.locator("section#case")).to_have_attribute("data-status", "remediation")
        move_to(page, "resolved", reason)
        case_notice(page, fill(messages["status-changed"], status=messages["status-resolved"]))
        expect(page.locator("#status-form")).to_be_hidden()  # resolved is final
        history = page.locator("#history-list li.history-entry")
        expect(history).to_have_count(4)  # claim, investigating (the other), remediation, resolved
        expect(history.last).to_contain_text(reason)
        assert fits_the_phone(page)
        screenshot(page, "console-case.png")

        assert_nothing_kept(page, desk.triage)
        assert_only_triage_and_keycloak(watch, keycloak)

    # --- what reached the servers ---------------------------------------------------------
    assert desk.status() == "resolved"
    history = desk.call("GET", f"/api/cases/{desk.case_id}/history")["entries"]
    subject = desk.subject()
    assert [(e["action"], e["status"]) for e in history if e["subject"] == subject] == [
        ("claim", None),
        ("status", "remediation"),
        ("status", "resolved"),
    ]
    assert history[-1]["reason"] == reason

    # The note opens with an operator key, and not with the worker's; the acknowledgement
    # and the reply open with the receipt's reply key only.
    stored = {doc["kind"]: doc for doc in desk.stored_messages()}
    assert set(stored) == {"note", "acknowledgement", "reply"}
    worker_key = desk.worker.reply_private
    for kind, text, opens, not_with in (
        ("note", note, desk.private_key, worker_key),
        ("acknowledgement", acknowledgement, worker_key, desk.private_key),
        ("reply", reply, worker_key, desk.private_key),
    ):
        doc = stored[kind]
        routing = message_routing(doc["message_id"], kind)
        opened = open_envelope(
            doc["envelope"], private_key=opens, case_id=desk.case_id, routing=routing
        )
        assert opened.decode() == text, kind
        with pytest.raises(EnvelopeError):
            open_envelope(
                doc["envelope"], private_key=not_with, case_id=desk.case_id, routing=routing
            )
    reply_kid = key_id(desk.worker.reply_public)
    assert set(stored["reply"]["envelope"]["recipients"]) == {reply_kid}
    assert reply_kid not in stored["note"]["envelope"]["recipients"]
    # The report the page opened is the one sealed at submission (routing and all).
    case = desk.mongo.triage_cases.find_one({"_id": desk.case_id})
    assert case is not None
    routing = routing_metadata(
        case["factory"], case["categories"], case["urgent"], case["language"]
    )
    assert (
        open_envelope(
            case["content"], private_key=desk.private_key, case_id=desk.case_id, routing=routing
        ).decode()
        == desk.report
    )

    # Each hand-out to this operator was recorded first: the report, the name, the note.
    hashes = {
        "content": envelope_hash(case["content"]),
        "identity": envelope_hash(case["identity"]),
        "message": envelope_hash(stored["note"]["envelope"]),
    }
    wait_for(
        lambda: all(
            (kind, digest) in disclosed_to(desk, subject) for kind, digest in hashes.items()
        ),
        timeout=WAIT,
        what="the disclosures of the report, the name and the note to this operator",
    )

    # What the page posted as messages are envelopes; no request, to triage or Keycloak,
    # holds a byte of the key file or a word that was typed or opened.
    posted = bodies.posted_to(f"/api/cases/{desk.case_id}/messages")
    assert sorted(body["kind"] for body in posted) == ["acknowledgement", "note", "reply"]
    assert all(set(body) == {"message_id", "kind", "envelope"} for body in posted)
    key_text = desk.key_file.read_bytes()
    secrets = [key_text, key_text.splitlines()[1], b64encode(desk.private_key).encode()]
    secrets += [secret.encode() for secret in desk.secrets]
    secrets += [word.encode() for secret in desk.secrets for word in secret.split() if "zq" in word]
    for secret in secrets:
        assert not bodies.holding(secret), f"sent: {bodies.holding(secret)}"
    # The watch does see what is sent: the PKCE challenge, its verifier, the status reason.
    assert any("code_challenge_method=S256" in url for url, _ in bodies.sent)
    assert bodies.holding(b"code_verifier=")
    assert bodies.holding(reason.encode())


def test_without_javascript_the_console_says_what_it_needs(desk: Desk, browser: Browser) -> None:
    with phone(browser, desk.triage, locale="en-GB", javascript=False) as (page, watch):
        response = page.goto(f"{desk.triage}/console")
        assert response is not None and response.url == f"{desk.triage}/console/"
        expect(page.locator("p.notice")).to_be_visible()
        expect(page.locator("button#sign-in")).to_be_hidden()
        assert_nothing_kept(page, desk.triage)
        watch.assert_clean()
    # The crypto the console runs is, byte for byte, the worker form's.
    console_html = httpx.get(f"{desk.triage}/console/", timeout=30, verify=tls()).text
    form_html = httpx.get(f"{desk.settings.intake_url}/en/", timeout=30, verify=tls()).text
    ours = re.search(r"/console/static/v/[0-9a-f]{12}/", console_html)
    theirs = re.search(r"/static/v/[0-9a-f]{12}/", form_html)
    assert ours and theirs
    for name in ("crypto/envelope.js", "vendor/libsodium-sumo.js"):
        mine = httpx.get(f"{desk.triage}{ours.group(0)}{name}", timeout=30, verify=tls())
        form = httpx.get(
            f"{desk.settings.intake_url}{theirs.group(0)}{name}", timeout=30, verify=tls()
        )
        assert mine.status_code == form.status_code == 200
        assert mine.content == form.content, name
    worker = httpx.get(f"{desk.triage}{ours.group(0)}crypto-worker.js", timeout=30, verify=tls())
    assert "'wasm-unsafe-eval'" in worker.headers["content-security-policy"]


def test_a_buyer_account_is_refused_by_the_console(desk: Desk, browser: Browser) -> None:
    """A buyer signs in fine at Keycloak, but the console is an operator's: it says so and
    shows no queue (triage would refuse the buyer's token on every case route anyway)."""
    buyer = add_user(desk.settings, Role.BUYER, f"b-console-{uuid.uuid4().hex[:6]}")
    with phone(browser, desk.triage, locale="en-GB") as (page, watch):
        page.goto(f"{desk.triage}/console/")
        messages = messages_of(page)
        with page.expect_popup() as opened:
            page.locator("button#sign-in").click()
        popup = opened.value
        popup.locator("input#username").fill(buyer)
        popup.locator("input#password").fill(buyer)
        popup.locator("#kc-login").click()
        popup.wait_for_event("close", timeout=60_000)
        expect(page.locator("p#error")).to_have_text(messages["not-an-operator"])
        expect(page.locator("#workspace")).to_be_hidden()
        expect(page.locator("section#signed-out")).to_be_visible()
        assert not [url for _, url in watch.requests if "/api/cases" in url]
        assert_nothing_kept(page, desk.triage)

"""The buyer page in Chromium, on a phone: a brand's compliance officer signs in through
Keycloak, sees the organisation's signed digests checked, opens them with the key file and
exports a CSV, and nothing readable ever leaves the browser.

The module's buyer is its own (a registry entry with a key made here, and a Keycloak user of
that org, tests/support/realm.py): the demo buyer1's org, buyer-1, belongs to the README
walkthrough, which registers it with a key of its own in the same session. buyer1 itself
signs in too, and sees what notify hands its org.

Reports are sealed here with PyNaCl to what intake offers (as the CLI seals them) and each
is issued in a digest of its own (POST /api/digests/issue), so the page gets a chain of
digests. What the page shows is checked against what notify hands out; a digest changed or
withheld on the way (Playwright rewrites the response, after notify signed it) is detected.
Every request body is searched for the key and the reports' words; no cookie, no storage.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Page,
    Request,
    expect,
)
from pymongo import MongoClient

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.keys import b64decode_strict, b64encode
from hotline.shared.pow import solve
from hotline.shared.receipt import derive_receipt, new_receipt
from hotline.shared.reports import routing_metadata
from hotline.shared.store import Databases
from hotline.shared.web import PAGE_CSP
from tests.e2e.test_worker_form import World, messages_of, unique_chinese, unique_token
from tests.support.browser import Watch, chromium, origin_of, phone, screenshot, storage_left
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

# --- the system's side: a buyer of the module's own, reports, digests ----------------------


@dataclass
class Report:
    case_id: str
    text: str
    words: list[str]  # what must never leave the browser in the clear


@dataclass
class Buyers:
    """The module's buyer (registry id = Keycloak org), its key and Keycloak user, and the
    reports made at its factory, each in a digest of its own."""

    world: World
    user: str
    key: Party
    reports: list[Report] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.world.system.settings

    @property
    def notify(self) -> str:
        return self.settings.notify_url

    @property
    def org(self) -> str:
        return self.world.buyer

    @property
    def key_file(self) -> bytes:
        """The private key file, as `hotline keys generate` writes it (hotline.shared.keys)."""
        head = f"hotline x25519 private key {self.key.key_id}"
        return f"{head}\n{b64encode(self.key.private)}\n".encode()

    @property
    def public_key_file(self) -> bytes:
        return f"hotline x25519 public key {self.key.key_id}\n{self.key.public_b64}\n".encode()

    def headers(self, user: str | None = None) -> dict[str, str]:
        name = user or self.user
        return {"Authorization": f"Bearer {password_token(self.settings, name, name)}"}

    def report(self, factory: str, text: str, words: list[str]) -> Report:
        """A report sealed here to what intake offers for `factory` (operators and buyers)."""
        offered = self.world.recipients(factory)["content"]
        assert self.key.key_id in offered, "the module's buyer is a recipient"
        case_id = str(uuid.uuid4())
        routing = routing_metadata(factory, ["hours", "living"], False, "zh-hans")
        content = seal_envelope(
            text.encode(),
            case_id=case_id,
            kind="content",
            routing=routing,
            recipients={kid: b64decode_strict(pub) for kid, pub in offered.items()},
        )
        derived = derive_receipt(new_receipt())
        issued = httpx.get(f"{self.world.intake}/api/challenge", timeout=30, verify=tls()).json()
        body = {
            "case_id": case_id,
            **routing,
            "lookup_token": derived.lookup_token.hex(),
            "reply_key": b64encode(derived.reply_public),
            "content": content.model_dump(),
            "pow": {
                "challenge": issued["challenge"],
                "solution": solve(issued["challenge"], issued["difficulty"]),
            },
        }
        response = httpx.post(
            f"{self.world.intake}/api/reports", json=body, timeout=30, verify=tls()
        )
        assert response.status_code == 201, response.text
        return Report(case_id, text, words)

    def digests(self, user: str | None = None) -> list[dict[str, Any]]:
        """Every digest notify hands the user's org, as the page pulls them (by cursor)."""
        found: list[dict[str, Any]] = []
        since, more = 0, True
        while more:
            response = httpx.get(
                f"{self.notify}/api/digests",
                params={"since": since, "limit": 200},
                headers=self.headers(user),
                timeout=30,
                verify=tls(),
            )
            assert response.status_code == 200, response.text
            page = response.json()
            found += page["digests"]
            since, more = page["next"], page["more"]
        return found

    def issued_with(self, case_id: str) -> dict[str, Any]:
        """The digest that holds `case_id`, issued on request once notify has the case's item
        (the schedule may have issued it first: then that one)."""

        def holding() -> dict[str, Any] | None:
            for file in self.digests():
                if any(item["case_id"] == case_id for item in file["digest"]["items"]):
                    return file
            response = httpx.post(
                f"{self.notify}/api/digests/issue", headers=self.headers(), timeout=30, verify=tls()
            )
            assert response.status_code in (201, 204), response.text
            return None

        return wait_for(holding, timeout=90, what=f"a digest holding case {case_id}")


@pytest.fixture(scope="module")
def buyers(system: LocalSystem) -> Buyers:
    """A factory linked to the module's buyer, and three reports there, in three digests:
    English, Chinese, and a text a spreadsheet would run as a formula."""
    admin = AdminApi(system.settings)
    operator, key = Party.new(), Party.new()
    admin.created("operator-keys", {"public_key": operator.public_b64})
    org = unique_buyer_id()
    admin.created(
        "buyers", {"buyer_id": org, "name": "Page Test Brand", "public_key": key.public_b64}
    )
    world = World(system, admin, operator, org)
    setup = Buyers(world, add_user(system.settings, "buyer", org), key)
    factory = world.new_factory(f"Harbour{uuid.uuid4().hex[:6]} Textiles", "Ningbo")
    english = unique_token("zqpage")
    chinese = unique_chinese()
    formula = unique_token("zqcell")
    texts = [
        (f"Overtime every Sunday, unpaid {english}", [english]),
        (f"宿舍十二个人一间，没有热水 {chinese}", [chinese]),
        (
            f'=HYPERLINK("http://x.invalid","{formula}"), then a second line\nand "quotes"',
            [formula],
        ),
    ]
    for text, words in texts:
        report = setup.report(factory, text, words)
        setup.issued_with(report.case_id)
        setup.reports.append(report)
    return setup


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# --- the browser's side ---------------------------------------------------------------------


@dataclass
class Bodies:
    """Every request the context sent, to any origin (Keycloak's included): URL and body."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def record(self, request: Request) -> None:
        self.sent.append((request.url, request.post_data_buffer or b""))

    def holding(self, secret: bytes) -> list[str]:
        return [url for url, body in self.sent if secret in body or secret in url.encode()]


def watch_bodies(context: BrowserContext) -> Bodies:
    bodies = Bodies()
    context.on("request", bodies.record)
    return bodies


def sign_in(page: Page, user: str | None) -> None:
    """Click "Sign in"; in the window that opens, sign in as `user` (None: Keycloak still
    has the session, and the window comes back at once). The page closes the window."""
    with page.expect_popup() as opened:
        page.locator("button#sign-in").click()
    popup = opened.value
    if user is not None:
        popup.locator("input#username").fill(user)
        popup.locator("input#password").fill(user)
        popup.locator("#kc-login").click()
    popup.wait_for_event("close", timeout=60_000)
    expect(page.locator("section#signed-in")).to_be_visible(timeout=60_000)
    # The page has pulled and checked every digest (notify records each hand-out first).
    expect(page.locator("#summary")).not_to_be_empty(timeout=60_000)
    expect(page.locator("p#error")).to_be_empty()


def load_key(page: Page, key_file: bytes, name: str = "buyer.key") -> None:
    payload = FilePayload(name=name, mimeType="application/octet-stream", buffer=key_file)
    page.locator("input#key-file").set_input_files(payload)


def shown_digests(page: Page) -> dict[int, str]:
    """seq -> the check the page shows for it ("verified", or why not)."""
    shown = {}
    for digest in page.locator("#digest-list li.digest").all():
        shown[int(digest.get_attribute("data-seq") or "0")] = digest.get_attribute("data-check")
    return {seq: check or "" for seq, check in shown.items()}


def exported(page: Page) -> list[dict[str, str]]:
    """Click "Export CSV" and read the file the browser saves."""
    with page.expect_download() as saved:
        page.locator("button#export").click()
    path = saved.value.path()
    assert saved.value.suggested_filename.endswith(".csv")
    raw = Path(path).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "a byte order mark, for spreadsheets"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def static_base(html: str, prefix: str) -> str:
    """The versioned static folder a page's links name (`<prefix><build>/`)."""
    found = re.search(re.escape(prefix) + r"[0-9a-f]{12}/", html)
    assert found, f"no {prefix} link in the page"
    return found.group(0)


def fits_the_phone(page: Page) -> bool:
    fits: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return fits


def assert_nothing_kept(page: Page, notify: str) -> None:
    """No cookie of notify's origin, no web storage, IndexedDB, cache or service worker.
    (Keycloak's own cookies, on its path of the same host, are Keycloak's session.)"""
    left = storage_left(page)
    left["cookies"] = [c["name"] for c in page.context.cookies([f"{notify}/buyer/"])]
    assert not any(left.values()), f"the browser keeps: {left}"


def assert_only_notify_and_keycloak(watch: Watch, keycloak: str) -> None:
    """Requests went to notify and to Keycloak only; nothing failed on notify's pages, the
    CSP blocked nothing, no uncaught error."""
    elsewhere = [url for url in watch.off_origin() if origin_of(url) != keycloak]
    assert not elsewhere, f"requests left notify and Keycloak: {elsewhere}"
    assert not watch.csp_violations, f"CSP violations: {watch.csp_violations}"
    assert not watch.page_errors, f"uncaught errors: {watch.page_errors}"
    ours = [e for e in watch.console_errors if watch.origin in e or e.startswith("worker:")]
    assert not ours, f"console errors: {ours}; failed responses: {watch.failed_responses}"


def assert_nothing_readable_sent(bodies: Bodies, buyers: Buyers) -> None:
    """No request body, to notify or Keycloak, holds the key or a word of a report."""
    secrets = [buyers.key_file, b64encode(buyers.key.private).encode()]
    secrets += [word.encode() for report in buyers.reports for word in report.words]
    for secret in secrets:
        assert not bodies.holding(secret), f"sent: {bodies.holding(secret)}"
    # The watch does see what is sent: the PKCE challenge, then its verifier for the code.
    assert any("code_challenge_method=S256" in url for url, _ in bodies.sent)
    assert bodies.holding(b"code_verifier="), "the code is redeemed with its PKCE verifier"


# --- 1. sign in, verify, open, export ------------------------------------------------------


def test_a_buyer_signs_in_verifies_opens_and_exports_its_digests(
    buyers: Buyers, browser: Browser
) -> None:
    handed_out = buyers.digests()
    seqs = [file["digest"]["seq"] for file in handed_out]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= len(buyers.reports)
    keycloak = origin_of(buyers.settings.keycloak_issuer)
    english, chinese, formula = buyers.reports

    with phone(browser, buyers.notify, locale="en-GB") as (page, watch):
        bodies = watch_bodies(page.context)
        response = page.goto(f"{buyers.notify}/buyer/en/")
        assert response is not None and response.status == 200
        messages = messages_of(page)
        expect(page.locator("section#workspace")).to_be_hidden()

        sign_in(page, buyers.user)
        expect(page.locator("#who")).to_contain_text(buyers.org)
        expect(page.locator("#digest-list li.digest")).to_have_count(len(seqs))
        assert shown_digests(page) == {seq: "verified" for seq in seqs}
        expect(page.locator("#summary")).to_have_attribute("data-bad", "0")
        expect(
            page.locator(f'li.item[data-change="new"][data-case="{english.case_id}"] .item-text')
        ).to_have_text(messages["text-locked"])

        load_key(page, buyers.public_key_file, "buyer.key.pub")  # the wrong file first
        expect(page.locator("p#error")).to_have_text(messages["key-public-key"])
        load_key(page, buyers.key_file)
        for report in buyers.reports:
            expect(
                page.locator(f'li.item[data-change="new"][data-case="{report.case_id}"] .item-text')
            ).to_have_text(report.text, use_inner_text=True)
        expect(page.locator("p#error")).to_be_empty()
        page.evaluate("document.fonts.ready.then(() => true)")
        assert fits_the_phone(page), "nothing is wider than the 360 px screen"
        screenshot(page, "buyer-digests-en.png")

        rows = exported(page)
        # A case's state may change after its report's digest: its "changed" row follows.
        by_case = {row["case_id"]: row for row in rows if row["change"] == "new"}
        for report in (english, chinese):
            assert by_case[report.case_id]["text"] == report.text
        # A spreadsheet must show the worker's words, never run them as a formula.
        assert by_case[formula.case_id]["text"] == "'" + formula.text
        handed_items = [
            (f["digest"]["seq"], i["case_id"]) for f in handed_out for i in f["digest"]["items"]
        ]
        assert [(int(r["digest_seq"]), r["case_id"]) for r in rows] == handed_items
        assert {row["digest_check"] for row in rows} == {"verified"}

        # The same browser in Chinese: Keycloak still has the session, the window only passes.
        chinese_page = page.context.new_page()
        chinese_page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        chinese_page.goto(f"{buyers.notify}/buyer/zh-hans/")
        sign_in(chinese_page, None)
        expect(chinese_page.locator("#digest-list li.digest")).to_have_count(len(seqs))
        assert shown_digests(chinese_page) == {seq: "verified" for seq in seqs}
        load_key(chinese_page, buyers.key_file)
        expect(
            chinese_page.locator(
                f'li.item[data-change="new"][data-case="{chinese.case_id}"] .item-text'
            )
        ).to_have_text(chinese.text)
        assert fits_the_phone(chinese_page)
        screenshot(chinese_page, "buyer-digests-zh.png")
        chinese_page.close()

        assert_nothing_kept(page, buyers.notify)
        assert_only_notify_and_keycloak(watch, keycloak)
        assert_nothing_readable_sent(bodies, buyers)

        # Signing out ends Keycloak's session too: the next sign-in asks for the password.
        page.locator("button#sign-out").click()
        expect(page).to_have_url(f"{buyers.notify}/buyer/en/", timeout=30_000)
        expect(page.locator("section#signed-out")).to_be_visible()
        with page.expect_popup() as opened:
            page.locator("button#sign-in").click()
        expect(opened.value.locator("input#username")).to_be_visible(timeout=30_000)
        opened.value.close()
        expect(page.locator("p#error")).to_have_text(messages["signin-cancelled"])
        assert_nothing_kept(page, buyers.notify)


# --- 2. a digest withheld or changed on the way -----------------------------------------------


def test_the_page_detects_a_withheld_and_a_changed_digest(buyers: Buyers, browser: Browser) -> None:
    """Notify's store loses digest 1 and the last one's status is changed after notify signed
    it (as a rogue notify or whoever can write its database would): the page says so of
    both, and neither opens nor exports the changed one. The page fetches what notify
    really serves; nothing is rewritten in the browser."""
    handed_out = buyers.digests()
    seqs = [file["digest"]["seq"] for file in handed_out]
    last = seqs[-1]
    with tampered_digests(buyers, drop=1, alter=last):
        _sees_the_gap_and_the_change(buyers, browser, handed_out, seqs, last)


@contextmanager
def tampered_digests(buyers: Buyers, *, drop: int, alter: int) -> Iterator[None]:
    """Digest `drop` deleted and digest `alter`'s first item's status changed in notify's
    store, both put back afterwards."""
    client: MongoClient[dict[str, Any]] = MongoClient(buyers.settings.mongo_url)
    with client:
        digests = Databases(client, buyers.settings.mongo_db).notify_digests
        dropped = digests.find_one({"_id": f"{buyers.org}:{drop}"})
        changed = digests.find_one({"_id": f"{buyers.org}:{alter}"})
        assert dropped is not None and changed is not None
        body = json.loads(changed["body"])
        body["items"][0]["status"] = "closed"
        digests.delete_one({"_id": dropped["_id"]})
        digests.update_one(
            {"_id": changed["_id"]}, {"$set": {"body": rfc8785.dumps(body).decode()}}
        )
        try:
            yield
        finally:
            digests.insert_one(dropped)
            digests.update_one({"_id": changed["_id"]}, {"$set": {"body": changed["body"]}})


def _sees_the_gap_and_the_change(
    buyers: Buyers, browser: Browser, handed_out: list[dict[str, Any]], seqs: list[int], last: int
) -> None:
    with phone(browser, buyers.notify, locale="en-GB") as (page, _watch):
        page.goto(f"{buyers.notify}/buyer/en/")
        messages = messages_of(page)
        sign_in(page, buyers.user)
        expected = {seq: "verified" for seq in seqs[1:]}
        expected[2] = "gap"  # digest 1 never came
        expected[last] = "altered"  # the signature no longer covers the body
        expect(page.locator("#digest-list li.digest")).to_have_count(len(seqs) - 1)
        assert shown_digests(page) == expected
        bad = sum(1 for check in expected.values() if check != "verified")
        expect(page.locator("#summary")).to_have_attribute("data-bad", str(bad))
        expect(page.locator(f'li.digest[data-seq="{last}"] p.check')).to_have_text(
            messages["check-altered"]
        )
        expect(page.locator('li.digest[data-seq="2"] p.check')).to_have_text(messages["check-gap"])

        load_key(page, buyers.key_file)
        changed = handed_out[-1]["digest"]["items"][0]["case_id"]
        expect(
            page.locator(f'li.digest[data-seq="{last}"] li.item[data-case="{changed}"] .item-text')
        ).to_have_text(messages["text-unchecked"])
        rows = exported(page)
        assert {int(row["digest_seq"]) for row in rows} == set(seqs[1:-1])
        assert {row["digest_check"] for row in rows if row["digest_seq"] == "2"} == {"gap"}
        screenshot(page, "buyer-tampered-en.png")


# --- 3. the demo buyer ------------------------------------------------------------------------


def test_the_demo_buyer1_signs_in_and_sees_what_notify_hands_its_org(
    buyers: Buyers, browser: Browser
) -> None:
    handed_out = buyers.digests("buyer1")
    with phone(browser, buyers.notify, locale="en-GB") as (page, _watch):
        page.goto(f"{buyers.notify}/buyer/en/")
        sign_in(page, "buyer1")
        expect(page.locator("#who")).to_contain_text("buyer-1")
        expect(page.locator("#summary")).not_to_be_empty()
        expect(page.locator("#digest-list li.digest")).to_have_count(len(handed_out))


# --- 4. without JavaScript, and the page's own headers and code ------------------------------


def test_without_javascript_the_page_says_what_it_needs_and_its_headers_are_strict(
    buyers: Buyers, browser: Browser
) -> None:
    notify, intake = buyers.notify, buyers.world.intake
    keycloak = origin_of(buyers.settings.keycloak_issuer)
    with phone(browser, notify, locale="zh-CN", javascript=False) as (page, watch):
        response = page.goto(f"{notify}/buyer/")
        assert response is not None and response.url == f"{notify}/buyer/zh-hans/"
        headers = response.headers
        # The worker's page CSP, with Keycloak's token endpoint the one other place to connect.
        assert headers["content-security-policy"] == PAGE_CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {keycloak}"
        )
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        expect(page.locator("p.notice")).to_be_visible()
        expect(page.locator("button#sign-in")).to_be_hidden()
        assert_nothing_kept(page, notify)
        watch.assert_clean()
        screenshot(page, "buyer-nojs-zh.png")
    # The crypto the page runs is, byte for byte, the worker form's (one source of each).
    ours_at = static_base(
        httpx.get(f"{notify}/buyer/en/", timeout=30, verify=tls()).text, "/buyer/static/v/"
    )
    theirs_at = static_base(httpx.get(f"{intake}/en/", timeout=30, verify=tls()).text, "/static/v/")
    for name in ("crypto/tlog.js", "crypto/envelope.js", "vendor/libsodium-sumo.js"):
        ours = httpx.get(f"{notify}{ours_at}{name}", timeout=30, verify=tls())
        theirs = httpx.get(f"{intake}{theirs_at}{name}", timeout=30, verify=tls())
        assert ours.status_code == theirs.status_code == 200
        assert ours.content == theirs.content, name
    worker = httpx.get(f"{notify}{ours_at}crypto-worker.js", timeout=30, verify=tls())
    assert "'wasm-unsafe-eval'" in worker.headers["content-security-policy"]

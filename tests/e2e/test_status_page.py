"""The worker's status page in Chromium, on a phone: the worker comes back with the receipt,
reads what the hotline wrote and answers, and nobody learns who they are.

A worker reports through the real form and keeps the receipt; the operator acknowledges
and replies through triage's API, sealed with PyNaCl to the case's reply key; on a fresh
phone the worker types the receipt on the status page (in Chinese with full-width digits,
in English without spaces), reads both messages opened on the phone, and answers with text
and a photo carrying GPS EXIF; the operator opens the answer with PyNaCl and the photo has
no EXIF. A wrong receipt is refused calmly, a mistyped one before anything is sent; every
answer of POST /api/status has the same length whatever the case holds. The same without
JavaScript (the server opens the messages in memory and says so). The phone keeps nothing,
no request leaves the origin, the receipt is in no URL, and the CSP blocks nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, Response, expect

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.envelope import open_envelope, seal_envelope
from hotline.shared.keys import b64decode_strict, b64encode, key_id
from hotline.shared.messages import message_routing
from hotline.shared.pow import solve
from hotline.shared.receipt import derive_receipt, new_receipt, normalise_receipt
from hotline.shared.reports import routing_metadata
from tests.e2e.test_worker_form import (
    PHONE_LOCALE,
    SHOT_SUFFIX,
    Typed,
    World,
    assert_nothing_typed_at_rest,
    assert_photo_is_clean,
    fill_the_form,
    messages_of,
    photo_with_gps,
    report_body,
    shown_receipt,
    submit_and_wait_for_the_report,
    unique_chinese,
    unique_token,
    what_a_worker_types,
)
from tests.support.browser import Watch, chromium, phone, screenshot, storage_left
from tests.support.registry import AdminApi, Party, unique_buyer_id
from tests.support.waiting import unless_busy, wait_for

BUCKET = 64 * 1024  # every status answer, JSON or page, is a multiple of this
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")  # as a Chinese keyboard types


# --- the system's side: the case, the operator's messages, what the operator opens ----------


@dataclass
class Hotline:
    """The module's world (a factory's recipients, the operator) and the conversation API."""

    world: World

    @property
    def intake(self) -> str:
        return self.world.intake

    @property
    def triage(self) -> str:
        return self.world.system.settings.triage_url

    def _operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.operator_token()}"}

    def reply_key(self, case_id: str) -> bytes:
        """The case's reply key as the operator's CLI fetches it (once triage has the case)."""
        self.world.case(case_id)
        response = httpx.get(
            f"{self.triage}/api/cases/{case_id}/reply-key",
            headers=self._operator(),
            timeout=30,
            verify=tls(),
        )
        assert response.status_code == 200, response.text
        return b64decode_strict(response.json()["reply_key"])

    def operator_sends(self, case_id: str, kind: str, text: str) -> str:
        """An operator's message to the worker, sealed with PyNaCl to exactly the reply key
        and posted to triage; returns its id."""
        reply_key = self.reply_key(case_id)
        message_id = str(uuid.uuid4())
        envelope = seal_envelope(
            text.encode(),
            case_id=case_id,
            kind="content",
            routing=message_routing(message_id, kind),
            recipients={key_id(reply_key): reply_key},
        )
        response = httpx.post(
            f"{self.triage}/api/cases/{case_id}/messages",
            json={"message_id": message_id, "kind": kind, "envelope": envelope.model_dump()},
            headers=self._operator(),
            timeout=30,
            verify=tls(),
        )
        assert response.status_code == 201, response.text
        return message_id

    def status_at_intake(self, receipt: str) -> dict[str, Any]:
        """POST /api/status as the page asks it (lookup token derived here, proof solved)."""
        token = derive_receipt(receipt).lookup_token.hex()

        def ask() -> httpx.Response:
            issued = httpx.get(f"{self.intake}/api/challenge", timeout=30, verify=tls()).json()
            pow = {
                "challenge": issued["challenge"],
                "solution": solve(issued["challenge"], issued["difficulty"]),
            }
            return httpx.post(
                f"{self.intake}/api/status",
                json={"lookup_token": token, "pow": pow},
                timeout=30,
                verify=tls(),
            )

        response = unless_busy(ask, what="the status lookup")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def wait_for_messages(self, receipt: str, count: int) -> dict[str, Any]:
        """The status once intake shows `count` messages and triage's acknowledgement."""

        def arrived() -> dict[str, Any] | None:
            shown = self.status_at_intake(receipt)
            done = len(shown["messages"]) == count and shown["status"] == "acknowledged"
            return shown if done else None

        return wait_for(arrived, timeout=60, what=f"{count} messages, acknowledged, at intake")

    def report_by_api(self, factory: str) -> str:
        """A report made without the browser (as the CLI makes one); returns its receipt."""
        receipt = new_receipt()
        derived = derive_receipt(receipt)
        offered = self.world.recipients(factory)["content"]
        case_id = str(uuid.uuid4())
        routing = routing_metadata(factory, ["hours"], False, "en")
        content = seal_envelope(
            b"overtime every Sunday",
            case_id=case_id,
            kind="content",
            routing=routing,
            recipients={kid: b64decode_strict(pub) for kid, pub in offered.items()},
        )
        issued = httpx.get(f"{self.intake}/api/challenge", timeout=30, verify=tls()).json()
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
        response = httpx.post(f"{self.intake}/api/reports", json=body, timeout=30, verify=tls())
        assert response.status_code == 201, response.text
        return receipt

    def answer_opened(self, case_id: str) -> tuple[str, str, list[tuple[str, bytes]]]:
        """The worker's one answer as the operator opens it with PyNaCl: its id, its text
        (from triage's record of the event) and its attachments (from intake, where they
        stay apart): [(media type, bytes)]."""

        def answers() -> list[dict[str, Any]]:
            response = httpx.get(
                f"{self.triage}/api/cases/{case_id}/messages",
                headers=self._operator(),
                timeout=30,
                verify=tls(),
            )
            assert response.status_code == 200, response.text
            return [m for m in response.json()["messages"] if m["kind"] == "answer"]

        [answer] = wait_for(answers, timeout=60, what="the worker's answer at triage")
        assert answer["author_role"] == "worker"
        routing = message_routing(answer["message_id"], "answer")
        private = self.world.operator.private
        text = open_envelope(
            answer["envelope"], private_key=private, case_id=case_id, routing=routing
        ).decode()
        response = httpx.get(
            f"{self.intake}/api/cases/{case_id}/attachments",
            headers=self._operator(),
            timeout=30,
            verify=tls(),
        )
        assert response.status_code == 200, response.text
        [held] = [a for a in response.json()["answers"] if a["message_id"] == answer["message_id"]]
        assert held["routing"] == routing
        opened = []
        for envelope in held["attachments"]:
            media_type, _, data = open_envelope(
                envelope, private_key=private, case_id=case_id, routing=routing
            ).partition(b"\n")
            opened.append((media_type.decode("ascii"), data))
        return answer["message_id"], text, opened


@pytest.fixture(scope="module")
def hotline(system: LocalSystem) -> Hotline:
    """An operator key and a buyer key of this module's own, both registered in the log."""
    admin = AdminApi(system.settings)
    operator = Party.new()
    admin.created("operator-keys", {"public_key": operator.public_b64})
    buyer = unique_buyer_id()
    admin.created(
        "buyers",
        {"buyer_id": buyer, "name": "Status Test Buyer", "public_key": Party.new().public_b64},
    )
    return Hotline(World(system, admin, operator, buyer))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# --- the worker's side -------------------------------------------------------------------


def report_through_the_form(hotline: Hotline, browser: Browser, language: str) -> tuple[str, str]:
    """Report through the form on a phone, as in the form's own tests; the case id and the
    receipt the worker wrote down."""
    name = f"Lantern{uuid.uuid4().hex[:6]} Toys"
    factory = hotline.world.new_factory(name, "Dongguan")
    typed = what_a_worker_types(language, factory, b"")
    with phone(browser, hotline.intake, locale=PHONE_LOCALE[language]) as (page, watch):
        page.goto(f"{hotline.intake}/{language}/")
        expect(page.locator("a#status-link")).to_have_attribute("href", f"/{language}/status")
        fill_the_form(page, typed, name, javascript=True, attach=False)
        posted = submit_and_wait_for_the_report(page, hotline.intake)
        receipt = shown_receipt(page)
        link = page.locator("section#receipt-view a#status-link-after")
        expect(link).to_have_attribute("href", f"/{language}/status")
        watch.assert_clean()
    return report_body(posted)["case_id"], receipt


def unlock(page: Page, intake: str, typed: str) -> Response:
    """Type the receipt and ask; return intake's answer to the page's POST /api/status (the
    phone runs Argon2id and a proof of work first: seconds)."""
    page.locator("input#receipt").fill(typed)
    with page.expect_response(
        lambda r: r.url == f"{intake}/api/status" and r.request.method == "POST",
        timeout=120_000,
    ) as answered:
        page.locator("button#unlock").click()
    return answered.value


def shown_messages(page: Page) -> list[tuple[str, str, str]]:
    """The messages on the page: (kind, label, text), in the order shown."""
    items = page.locator("ol#message-list li.message")
    return [
        (
            item.get_attribute("data-kind") or "",
            item.locator(".message-kind").inner_text(),
            item.locator(".message-text").inner_text(),
        )
        for item in items.all()
    ]


def answer_with_a_photo(page: Page, text: str, photo: bytes) -> None:
    page.locator("textarea#answer-text").fill(text)
    payload = FilePayload(name="IMG_0002.jpg", mimeType="image/jpeg", buffer=photo)
    page.locator("input#photos").set_input_files([payload])


def assert_nothing_left(page: Page, watch: Watch, receipt: str) -> None:
    """No storage of any kind, the receipt in no URL (with JavaScript: in no request at all),
    nothing off the origin, no error, no CSP block."""
    left = storage_left(page)
    assert not any(left.values()), f"the phone keeps: {left}"
    digits = normalise_receipt(receipt)
    assert not any(digits in url or receipt in url for _, url in watch.requests)
    watch.assert_clean()


def fits_the_phone(page: Page) -> bool:
    """Nothing needs a sideways scroll on the phone's screen."""
    fits: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return fits


def expected_refusal(watch: Watch, url: str) -> None:
    """A wrong receipt's 404 is the answer the test asked for, not a fault: take it out of
    what the watch reports (after checking that it is there)."""
    assert any(f == f"404 {url}" for f in watch.failed_responses), watch.failed_responses
    watch.failed_responses[:] = [f for f in watch.failed_responses if f != f"404 {url}"]
    watch.console_errors[:] = [e for e in watch.console_errors if not ("404" in e and url in e)]


def the_answer(text: str, photo: bytes, marker: str, words: list[str]) -> Typed:
    """What the worker answers, in the form tests' terms (`words` must be found nowhere)."""
    return Typed("", text, "", photo, marker, b"", [*words, marker])


# --- 1. with JavaScript: everything opened and sealed on the phone ------------------------


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_worker_reads_the_reply_and_answers_from_the_status_page(
    language: str, hotline: Hotline, browser: Browser
) -> None:
    case_id, receipt = report_through_the_form(hotline, browser, language)
    chinese = language == "zh-hans"
    acknowledgement = (
        "我们收到了您的反映 " + unique_chinese() if chinese else "We have your report."
    )
    reply = (
        f"请问是几楼的安全出口？{unique_chinese()}" if chinese else "Which floor is the exit on?"
    )
    hotline.operator_sends(case_id, "acknowledgement", acknowledgement)
    hotline.operator_sends(case_id, "reply", reply)
    hotline.wait_for_messages(receipt, 2)

    marker = unique_token("exifmark")
    secret = [unique_token("zqanswer"), *([unique_chinese()] if chinese else [])]
    text = f"{'在三楼，晚上锁着' if chinese else 'Floor 3, locked at night'} {' '.join(secret)}"
    answer = the_answer(text, photo_with_gps(marker), marker, secret)
    # The worker comes back later, on a fresh phone: nothing of the form's visit is left.
    with phone(browser, hotline.intake, locale=PHONE_LOCALE[language]) as (page, watch):
        page.goto(f"{hotline.intake}/{language}/status")
        messages = messages_of(page)
        expect(page.locator("p#mode-js")).to_be_visible()
        expect(page.locator("p#mode-nojs")).to_be_hidden()
        typed = receipt.translate(FULL_WIDTH) if chinese else receipt.replace(" ", "")
        status = unlock(page, hotline.intake, typed)
        assert status.status == 200 and len(status.body()) % BUCKET == 0
        expect(page.locator("section#status-view")).to_be_visible(timeout=60_000)
        expect(page.locator("p#status-text")).to_have_text(messages["status-acknowledged"])
        expect(page.locator("input#receipt")).to_have_value("")  # not kept on the page
        expect(page.locator("ol#message-list li.message")).to_have_count(2)
        assert shown_messages(page) == [
            ("acknowledgement", messages["kind-acknowledgement"], acknowledgement),
            ("reply", messages["kind-reply"], reply),
        ]
        expect(page.locator('#status-days [data-day="received"] time')).to_have_text(
            status.json()["received"]
        )
        page.evaluate("document.fonts.ready.then(() => true)")
        assert fits_the_phone(page), "nothing is wider than the 360 px screen"
        screenshot(page, f"status-{SHOT_SUFFIX[language]}.png")

        answer_with_a_photo(page, answer.text, answer.photo)
        with page.expect_response(
            lambda r: r.url == f"{hotline.intake}/api/answers" and r.request.method == "POST",
            timeout=120_000,
        ) as sent:
            page.locator("button#send-answer").click()
        assert sent.value.status == 201, sent.value.text()
        expect(page.locator("section#answered-view")).to_be_visible()
        assert_nothing_left(page, watch, receipt)
        posted = sent.value.request.post_data_json
        assert isinstance(posted, dict), "the page posts a JSON answer"

        page.locator("a#leave").click()  # and away: the page forgets the case as it goes
        expect(page).to_have_url(f"{hotline.intake}/today")
        assert not any(storage_left(page).values())

    # What the phone sent: the lookup token of THIS receipt, ciphertext to the operators only.
    assert posted["lookup_token"] == derive_receipt(receipt).lookup_token.hex()
    operators = set(hotline.status_at_intake(receipt)["operators"]["identity"])
    assert hotline.world.operator.key_id in operators
    for envelope in [posted["envelope"], *posted["attachments"]]:
        assert set(envelope["recipients"]) == operators
    sent_text = str(posted)
    assert all(word not in sent_text for word in answer.words), "only ciphertext leaves"

    message_id, opened, attachments = hotline.answer_opened(case_id)
    assert message_id == posted["message_id"]
    assert opened == answer.text
    [(media_type, photo)] = attachments
    assert media_type == "image/jpeg"
    assert_photo_is_clean(photo, answer)
    assert_nothing_typed_at_rest(hotline.world, answer)
    assert [a["message_id"] for a in hotline.status_at_intake(receipt)["answers"]] == [message_id]


# --- 2. a wrong receipt, and what the answers' length tells ----------------------------------


def test_a_wrong_receipt_is_refused_calmly_and_every_status_answer_has_the_same_length(
    hotline: Hotline, browser: Browser
) -> None:
    """Two cases, one with messages and one without, and a receipt of no case: three
    answers of the same length. A mistyped receipt is refused on the phone."""
    factory = hotline.world.new_factory(f"Quay{uuid.uuid4().hex[:6]} Shoes", "Jakarta")
    talked, silent = hotline.report_by_api(factory), hotline.report_by_api(factory)
    case_id = hotline.status_at_intake(talked)["case_id"]
    hotline.operator_sends(case_id, "acknowledgement", "Received, thank you. " * 20)
    hotline.operator_sends(case_id, "reply", "Please tell us which shift. " * 40)
    hotline.wait_for_messages(talked, 2)
    nobody = new_receipt()  # well formed, checks out, and no case has it
    digits = normalise_receipt(nobody)
    mistyped = digits[:5] + str((int(digits[5]) + 1) % 10) + digits[6:]  # Damm catches it

    with phone(browser, hotline.intake, locale="en-GB") as (page, watch):
        page.goto(f"{hotline.intake}/en/status")
        messages = messages_of(page)

        wrong = unlock(page, hotline.intake, nobody)
        assert wrong.status == 404 and wrong.json()["code"] == "wrong-receipt"
        expect(page.locator("p#error")).to_have_text(messages["error-wrong-receipt"])
        expect(page.locator("section#status-view")).to_be_hidden()
        expected_refusal(watch, f"{hotline.intake}/api/status")

        page.locator("input#receipt").fill(mistyped)
        page.locator("button#unlock").click()
        expect(page.locator("p#error")).to_have_text(messages["error-bad-receipt"])
        assert len(watch.posts_to("/api/status")) == 1, "a mistyped receipt is not sent"

        lengths = [len(wrong.body())]
        for receipt, count in [(talked, 2), (silent, 0)]:
            found = unlock(page, hotline.intake, receipt)
            assert found.status == 200
            lengths.append(len(found.body()))
            expect(page.locator("p#error")).to_be_empty()
            expect(page.locator("ol#message-list li.message")).to_have_count(count)
            expect(page.locator("p#messages-none")).to_be_visible(visible=count == 0)
            page.locator("a#close").click()  # back to the start, the case forgotten
            expect(page.locator("section#status-view")).to_be_hidden()
            expect(page.locator("ol#message-list li")).to_have_count(0)
        assert len(set(lengths)) == 1 and lengths[0] % BUCKET == 0, lengths
        assert_nothing_left(page, watch, talked)


# --- 3. without JavaScript: the server opens in memory, and says so -------------------------


def post_receipt(page: Page, intake: str, receipt: str) -> Response:
    """The no-JS status form: type the receipt and send it; intake's page in answer."""
    page.goto(f"{intake}/en/status")
    page.locator("input#receipt").fill(receipt)
    with page.expect_response(
        lambda r: r.url == f"{intake}/en/status" and r.request.method == "POST",
        timeout=120_000,
    ) as answered:
        page.locator("button#unlock").click()
    return answered.value


def test_without_javascript_the_server_opens_the_replies_and_seals_the_answer(
    hotline: Hotline, browser: Browser
) -> None:
    name = f"Delta{uuid.uuid4().hex[:6]} Garments"
    factory = hotline.world.new_factory(name, "Dhaka")
    typed = what_a_worker_types("en", factory, b"")
    marker = unique_token("exifmark")
    secret = [unique_token("zqnojs")]
    answer = the_answer(
        f"It is the night shift {secret[0]}", photo_with_gps(marker), marker, secret
    )
    acknowledgement, reply = "We have your report.", "Is it every night?"

    with phone(browser, hotline.intake, locale="en-GB", javascript=False) as (page, watch):
        page.goto(f"{hotline.intake}/en/")
        fill_the_form(page, typed, name, javascript=False, attach=False)
        page.locator("button#submit").click()
        receipt = shown_receipt(page)
        case_id = hotline.status_at_intake(receipt)["case_id"]
        hotline.operator_sends(case_id, "acknowledgement", acknowledgement)
        hotline.operator_sends(case_id, "reply", reply)
        hotline.wait_for_messages(receipt, 2)
        silent = hotline.report_by_api(factory)

        page.goto(f"{hotline.intake}/en/status")
        messages = messages_of(page)
        expect(page.locator("p#mode-nojs")).to_be_visible()
        expect(page.locator("p#mode-js")).to_be_hidden()
        lengths = []
        for other in (silent, new_receipt()):
            shown = post_receipt(page, hotline.intake, other)
            lengths.append(len(shown.body()))
        expect(page.locator("p#error")).to_have_text(messages["error-wrong-receipt"])
        expected_refusal(watch, f"{hotline.intake}/en/status")

        shown = post_receipt(page, hotline.intake, receipt)
        assert shown.status == 200
        lengths.append(len(shown.body()))
        assert len(set(lengths)) == 1 and lengths[0] % BUCKET == 0, lengths
        expect(page.locator("section#status-view")).to_be_visible()
        expect(page.locator("p#opened-on-server")).to_be_visible()
        expect(page.locator("p#status-text")).to_have_text(messages["status-acknowledged"])
        assert shown_messages(page) == [
            ("acknowledgement", messages["kind-acknowledgement"], acknowledgement),
            ("reply", messages["kind-reply"], reply),
        ]
        assert fits_the_phone(page), "nothing is wider than the 360 px screen"
        screenshot(page, "status-nojs-en.png")

        answer_with_a_photo(page, answer.text, answer.photo)
        page.locator("button#send-answer").click()
        expect(page.locator("section#answered-view")).to_be_visible()
        expect(page.locator("p#error")).to_be_empty()
        assert_nothing_left(page, watch, receipt)

    _, opened, attachments = hotline.answer_opened(case_id)
    assert opened == answer.text
    [(media_type, photo)] = attachments
    assert media_type == "image/jpeg"
    assert_photo_is_clean(photo, answer)
    assert_nothing_typed_at_rest(hotline.world, answer)

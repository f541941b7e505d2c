"""The worker's web form in Chromium, on a phone: what a worker does, and what must hold.

A worker fills the real form (in Chinese and in English, with a photo carrying GPS EXIF and a
voice note) and gets a receipt; the operator's key opens exactly what was typed, the photo
without any EXIF; no typed word is anywhere on disk; the phone keeps nothing; no request
leaves the origin; the CSP (always on, never bypassed) blocks nothing. The same without
JavaScript. The page refuses to seal to a key that is not in the audit log, or to a factory's
key. The crypto worker passes the vectors the Python tests pass.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image
from playwright.sync_api import Browser, FilePayload, Page, Response, expect
from pymongo import MongoClient

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.envelope import open_envelope
from hotline.shared.keys import b64encode, generate_keypair, key_id
from hotline.shared.receipt import derive_receipt, normalise_receipt
from hotline.shared.registry import REGISTRY_VERSION
from hotline.shared.reports import routing_metadata
from hotline.shared.store import Databases
from tests.support.audit import Org, publish_events
from tests.support.browser import REPO, Watch, chromium, phone, screenshot, storage_left
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

RECEIPT_SHOWN = re.compile(r"^\d{4}( \d{4}){9}$")  # 40 digits in ten groups of four
PHONE_LOCALE = {"zh-hans": "zh-CN", "en": "en-GB"}  # URL language -> the phone's locale
SHOT_SUFFIX = {"zh-hans": "zh", "en": "en"}
CATEGORIES = ["wages", "safety"]
# Chinese words that occur nowhere else: random characters of the CJK block.
CJK_FIRST = 0x4E00


# --- the system's side: a factory, its recipients, the operator ------------------------------


@dataclass
class World:
    system: LocalSystem
    admin: AdminApi
    operator: Party
    buyer: str

    @property
    def intake(self) -> str:
        return self.system.settings.intake_url

    def new_factory(self, name: str, city: str) -> str:
        """A factory no other test uses, linked to this module's buyer, ready for reports."""
        code = unique_factory_code()
        self.admin.created("factories", {"code": code, "name": name, "country": "CN", "city": city})
        self.admin.created("links", {"buyer_id": self.buyer, "factory": code})
        wait_for(
            lambda: self.proofs_cover_all_keys(code),
            timeout=120,  # the log integrates every second; a loaded machine is slower
            what=f"the audit log's proofs of every recipient key of {code}",
        )
        return code

    def recipients(self, factory: str) -> dict[str, Any]:
        response = httpx.get(f"{self.intake}/api/recipients/{factory}", timeout=30, verify=tls())
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def proofs_cover_all_keys(self, factory: str) -> bool:
        """The page refuses keys a checkpoint does not cover yet; the log integrates on an
        interval, so a fresh key is proven a moment after it is registered."""
        answer = self.recipients(factory)
        kids = set(answer["content"]) | set(answer["identity"])
        return kids <= set(answer["transparency"]["proofs"])

    def slip_buyer_key_into_the_registry(self, factory: str, kid: str, public: str) -> None:
        """A buyer with this key, linked to `factory`, written straight into the database:
        no registry API, no outbox, so no `key.registered` event reaches the log. As anyone who
        can write the database could, it bumps the registry's write count, so intake reads the
        registry again at its next request (otherwise within TRUSTED_SECONDS)."""
        buyer = unique_buyer_id()
        client: MongoClient[dict[str, Any]] = MongoClient(self.system.settings.mongo_url)
        with client:
            db = Databases(client, self.system.settings.mongo_db)
            db.buyers.insert_one(
                {"_id": buyer, "name": "Slipped", "key_id": kid, "public_key": public}
            )
            db.links.insert_one({"_id": f"{buyer}|{factory}", "buyer": buyer, "factory": factory})
            db[REGISTRY_VERSION].update_one(
                {"_id": REGISTRY_VERSION}, {"$inc": {"writes": 1}}, upsert=True
            )

    def offered_with(self, factory: str, kid: str, *, proven: bool) -> dict[str, Any] | None:
        """Intake's recipients of `factory` once they offer `kid`, with a proof of it exactly
        when `proven` (a key registered a moment ago waits for the next checkpoint)."""
        answer = self.recipients(factory)
        if kid not in answer["content"]:
            return None
        if (kid in answer["transparency"]["proofs"]) != proven:
            return None
        return answer

    def operator_token(self) -> str:
        return password_token(self.system.settings, "operator", "operator")

    def case(self, case_id: str) -> dict[str, Any]:
        """The case as the operator's API hands it out (it takes a moment to reach triage)."""

        def shown() -> dict[str, Any] | None:
            response = httpx.get(
                f"{self.system.settings.triage_url}/api/cases/{case_id}",
                headers={"Authorization": f"Bearer {self.operator_token()}"},
                timeout=30,
                verify=tls(),
            )
            if response.status_code == 404:
                return None
            assert response.status_code == 200, response.text
            found: dict[str, Any] = response.json()
            return found

        return wait_for(shown, timeout=60, what=f"case {case_id} at triage")

    def cases_at(self, factory: str) -> list[str]:
        response = httpx.get(
            f"{self.system.settings.triage_url}/api/cases",
            params={"factory": factory, "limit": 200},
            headers={"Authorization": f"Bearer {self.operator_token()}"},
            timeout=30,
            verify=tls(),
        )
        assert response.status_code == 200, response.text
        return [case["case_id"] for case in response.json()["cases"]]

    def open(self, case: dict[str, Any], envelope: dict[str, Any]) -> bytes:
        """Open an envelope of `case` with the operator's private key (PyNaCl)."""
        routing = routing_metadata(
            case["factory"], case["categories"], case["urgent"], case["language"]
        )
        return open_envelope(
            envelope, private_key=self.operator.private, case_id=case["case_id"], routing=routing
        )

    def attachments(self, case: dict[str, Any]) -> list[tuple[str, bytes]]:
        """The case's attachments as the operator gets them from intake (which keeps them
        apart from the case, never in Kafka), opened: (media type, bytes)."""
        response = httpx.get(
            f"{self.intake}/api/cases/{case['case_id']}/attachments",
            headers={"Authorization": f"Bearer {self.operator_token()}"},
            timeout=30,
            verify=tls(),
        )
        assert response.status_code == 200, response.text
        opened = []
        for envelope in response.json()["attachments"]:
            media_type, _, data = self.open(case, envelope).partition(b"\n")
            opened.append((media_type.decode("ascii"), data))
        return opened


@pytest.fixture(scope="module")
def world(system: LocalSystem) -> World:
    """An operator key and a buyer key of this module's own, both registered in the log."""
    admin = AdminApi(system.settings)
    operator = Party.new()
    admin.created("operator-keys", {"public_key": operator.public_b64})
    buyer = unique_buyer_id()
    admin.created(
        "buyers",
        {"buyer_id": buyer, "name": "Form Test Buyer", "public_key": Party.new().public_b64},
    )
    return World(system, admin, operator, buyer)


# --- the worker's side: a phone, a photo, a voice note -------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def photo_with_gps(marker: str) -> bytes:
    """A JPEG as a phone camera writes it: GPS position, a description, rotated by EXIF."""
    image = Image.new("RGB", (320, 240))
    image.putdata([(x % 256, y % 256, (x * y) % 256) for y in range(240) for x in range(320)])
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = marker
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Orientation] = 6  # the camera was held upright: rotate 90° to show
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (22.0, 32.0, 10.5),
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: (113.0, 56.0, 4.25),
        }
    )
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    written = out.getvalue()
    assert Image.open(io.BytesIO(written)).getexif().get_ifd(ExifTags.IFD.GPSInfo), "has GPS"
    return written


@pytest.fixture(scope="module")
def voice_note(browser: Browser, world: World) -> bytes:
    """A real one-second webm/opus recording, made by Chromium's MediaRecorder from its fake
    microphone (on the intake origin, a secure context; not the context under test)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{world.intake}/today")
        recorded: list[int] = page.evaluate(
            """async () => {
              const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
              const recorder = new MediaRecorder(stream, { mimeType: "audio/webm;codecs=opus" });
              const chunks = [];
              recorder.ondataavailable = (event) => chunks.push(event.data);
              const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
              recorder.start();
              setTimeout(() => recorder.stop(), 1000);  // the length of the recording
              await stopped;
              stream.getTracks().forEach((track) => track.stop());
              return Array.from(new Uint8Array(await new Blob(chunks).arrayBuffer()));
            }"""
        )
    finally:
        context.close()
    note = bytes(recorded)
    assert note[:4] == b"\x1a\x45\xdf\xa3", "a webm (EBML) file"
    return note


def unique_token(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def unique_chinese(length: int = 6) -> str:
    """Random CJK characters: a Chinese 'word' no document or log holds by chance."""
    number = uuid.uuid4().int
    chars = []
    for _ in range(length):
        number, index = divmod(number, 20000)
        chars.append(chr(CJK_FIRST + index))
    return "".join(chars)


@dataclass
class Typed:
    """What the worker typed and attached; `words` are what must never be found at rest."""

    factory: str
    text: str
    contact: str
    photo: bytes
    photo_marker: str
    voice: bytes
    words: list[str]


def what_a_worker_types(language: str, factory: str, voice: bytes) -> Typed:
    marker = unique_token("exifmark")
    ascii_words = [unique_token("zqtext"), unique_token("zqname")]
    if language == "zh-hans":
        chinese = [unique_chinese(), unique_chinese()]
        text = f"消防通道被货物堵住了 {chinese[0]} {ascii_words[0]}"
        contact = f"李伟 {chinese[1]} 电话 138{uuid.uuid4().int % 10**8:08d} {ascii_words[1]}"
        words = ascii_words + chinese
    else:
        text = f"The fire exit is blocked by pallets every night {ascii_words[0]}"
        contact = f"Li Wei, phone 138{uuid.uuid4().int % 10**8:08d} {ascii_words[1]}"
        words = ascii_words
    return Typed(factory, text, contact, photo_with_gps(marker), marker, voice, words + [marker])


def messages_of(page: Page) -> dict[str, str]:
    """The page's own translated messages (script#messages)."""
    text = page.locator("script#messages").text_content()
    assert text, "the page carries its messages"
    found: dict[str, str] = json.loads(text)
    return found


def pick_factory(page: Page, code: str, name: str, *, javascript: bool) -> None:
    """Search the factory by the first word of its name and pick it from the matches."""
    page.locator("input#factory-search").fill(name.split()[0])
    if javascript:
        page.locator(f'button.factory-result[data-code="{code}"]').click()
        expect(page.locator("input#factory")).to_have_value(code)
    else:  # the search is a form post; the page comes back with the matches as radios
        page.locator("button#factory-search-button").click()
        page.locator(f'input[name="factory_pick"][value="{code}"]').check()


def fill_the_form(
    page: Page, typed: Typed, factory_name: str, *, javascript: bool, attach: bool = True
) -> None:
    """Fill the form as a worker does: pick the factory, tick two categories, say it is
    urgent, type what happened and a contact, attach a photo and a voice note."""
    pick_factory(page, typed.factory, factory_name, javascript=javascript)
    for code in CATEGORIES:
        page.locator(f"input#cat-{code}").check()
    page.locator("input#urgent-yes").check()
    page.locator("textarea#text").fill(typed.text)
    page.locator("textarea#contact").fill(typed.contact)
    if not attach:
        return
    photo = FilePayload(name="IMG_0001.jpg", mimeType="image/jpeg", buffer=typed.photo)
    page.locator("input#photos").set_input_files([photo])
    voice = FilePayload(name="voice.webm", mimeType="audio/webm", buffer=typed.voice)
    page.locator("input#voice").set_input_files([voice])


def submit_and_wait_for_the_report(page: Page, intake: str) -> Response:
    """Press send; return intake's answer to the page's POST /api/reports (the worker
    derives the receipt, seals and solves the proof of work first: that takes seconds)."""
    with page.expect_response(
        lambda r: r.url == f"{intake}/api/reports" and r.request.method == "POST",
        timeout=120_000,
    ) as posted:
        page.locator("button#submit").click()
    assert posted.value.status == 201, posted.value.text()
    return posted.value


def report_body(response: Response) -> dict[str, Any]:
    body = response.request.post_data_json
    assert isinstance(body, dict), "the page posts a JSON report"
    return body


def shown_receipt(page: Page) -> str:
    code = page.locator("section#receipt-view p#receipt-code")
    expect(page.locator("section#receipt-view")).to_be_visible(timeout=60_000)
    shown = (code.text_content() or "").strip()
    assert RECEIPT_SHOWN.fullmatch(shown), "the receipt is 40 digits in groups of four"
    normalise_receipt(shown)  # its check digit is right
    return shown


# --- what must hold afterwards ---------------------------------------------------------------


def assert_photo_is_clean(photo: bytes, typed: Typed) -> None:
    """Re-encoded: no EXIF at all (so no GPS, maker or description), and shown upright."""
    image = Image.open(io.BytesIO(photo))
    assert image.format == "JPEG"
    assert dict(image.getexif()) == {}, "the photo carries no EXIF"
    assert b"Exif" not in photo and typed.photo_marker.encode() not in photo
    assert b"PhoneMaker" not in photo
    assert image.size == (240, 320), "the EXIF rotation was applied before it was dropped"


def assert_nothing_typed_at_rest(world: World, typed: Typed) -> None:
    """No typed word in the database files, Kafka's log segments or any log (UTF-8 bytes)."""
    files = [path for path in world.system.settings.data.rglob("*") if path.is_file()]
    assert any("kafka" in str(p) for p in files) and any("mongo" in str(p) for p in files)
    assert any(p.suffix == ".log" for p in files)
    for path in files:
        blob = path.read_bytes()
        for word in typed.words:
            assert word.encode() not in blob, f"a submitted word is in plaintext in {path}"


def assert_phone_keeps_nothing(page: Page, watch: Watch, receipt: str) -> None:
    left = storage_left(page)
    assert not any(left.values()), f"the phone keeps: {left}"
    digits = normalise_receipt(receipt)
    assert digits not in page.url and receipt not in page.url, "the receipt is in no URL"
    assert not any(digits in url for _, url in watch.requests), "the receipt is in no request"
    watch.assert_clean()


# --- 1. the form with JavaScript: sealed on the phone ---------------------------------------


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_worker_reports_from_a_phone_and_the_operator_reads_it(
    language: str, world: World, browser: Browser, voice_note: bytes
) -> None:
    name, city = f"Sunrise{uuid.uuid4().hex[:6]} Toys", "Dongguan"
    factory = world.new_factory(name, city)
    typed = what_a_worker_types(language, factory, voice_note)
    with phone(browser, world.intake, locale=PHONE_LOCALE[language]) as (page, watch):
        page.goto(f"{world.intake}/{language}/")
        expect(page.locator("p#mode-js")).to_be_visible()
        expect(page.locator("p#mode-nojs")).to_be_hidden()
        page.evaluate("document.fonts.ready.then(() => true)")
        screenshot(page, f"form-{SHOT_SUFFIX[language]}.png")
        fill_the_form(page, typed, name, javascript=True)
        posted = submit_and_wait_for_the_report(page, world.intake)
        body = report_body(posted)
        receipt = shown_receipt(page)
        screenshot(page, f"receipt-{SHOT_SUFFIX[language]}.png")
        assert_phone_keeps_nothing(page, watch, receipt)

    # What the phone sent: the lookup token and reply key of THIS receipt, never the receipt.
    derived = derive_receipt(receipt)
    assert body["lookup_token"] == derived.lookup_token.hex()
    assert body["reply_key"] == b64encode(derived.reply_public)
    assert body["language"] == language and body["channel"] == "web"
    sent = json.dumps(body, ensure_ascii=False)
    assert all(word not in sent for word in typed.words), "only ciphertext leaves the phone"

    case = world.case(body["case_id"])
    assert case["server_encrypted"] is False
    assert (case["factory"], sorted(case["categories"]), case["urgent"]) == (
        factory,
        sorted(CATEGORIES),
        True,
    )
    assert_the_operator_reads_what_was_typed_and_nothing_else_holds_it(world, case, typed)


def assert_the_operator_reads_what_was_typed_and_nothing_else_holds_it(
    world: World, case: dict[str, Any], typed: Typed
) -> None:
    """Content, identity and attachments open to exactly what the worker gave (the photo
    without metadata), and no typed word is anywhere at rest."""
    assert world.open(case, case["content"]).decode() == typed.text
    assert case["identity"] is not None
    assert world.open(case, case["identity"]).decode() == typed.contact
    attachments = dict(world.attachments(case))
    assert set(attachments) == {"image/jpeg", "audio/webm"}
    assert_photo_is_clean(attachments["image/jpeg"], typed)
    assert attachments["audio/webm"] == typed.voice
    assert_nothing_typed_at_rest(world, typed)


def test_a_text_of_only_invisible_characters_is_asked_for_its_words(
    world: World, browser: Browser
) -> None:
    name = f"Harbour{uuid.uuid4().hex[:6]} Garments"
    factory = world.new_factory(name, "Chittagong")
    with phone(browser, world.intake, locale="en-GB") as (page, watch):
        page.goto(f"{world.intake}/en/")
        expect(page.locator("p#mode-js")).to_be_visible()
        pick_factory(page, factory, name, javascript=True)
        page.locator("input#cat-wages").check()
        page.locator("textarea#text").fill(" \u200b\u2028\t\u202e ")  # looks empty, and is
        page.locator("button#submit").click()
        expect(page.locator("p#error")).to_have_text(messages_of(page)["empty-text"])
        assert watch.posts_to("/api/reports") == [], "nothing was sent"
        watch.assert_clean()


def test_the_record_button_records_a_voice_note(world: World, browser: Browser) -> None:
    """With the phone's microphone (Chromium's fake one, which plays a tone)."""
    name = f"Record{uuid.uuid4().hex[:6]} Garments"
    factory = world.new_factory(name, "Shenzhen")
    with phone(browser, world.intake, locale="en-GB") as (page, watch):
        page.goto(f"{world.intake}/en/")
        messages = messages_of(page)
        pick_factory(page, factory, name, javascript=True)
        page.locator("input#cat-hours").check()
        page.locator("textarea#text").fill(unique_token("recorded"))
        record = page.locator("button#record")
        expect(record).to_be_visible()
        record.click()
        expect(record).to_have_text(messages["stop-recording"])
        # The page counts the seconds recorded: stop after one, so there is sound to send.
        expect(page.locator("p#progress")).to_contain_text("0:01", timeout=30_000)
        record.click()
        expect(page.locator("audio#voice-preview")).to_be_visible()
        posted = submit_and_wait_for_the_report(page, world.intake)
        shown_receipt(page)
        watch.assert_clean()
    case = world.case(report_body(posted)["case_id"])
    [(media_type, voice)] = world.attachments(case)
    assert media_type.startswith("audio/webm")
    # A webm (EBML) file as MediaRecorder writes it, with an Opus track of that second.
    assert voice[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in voice[:64], "a webm recording"
    assert b"A_OPUS" in voice and len(voice) > 1000, "the recording holds sound"


# --- 2. without JavaScript: sealed by intake, in memory ------------------------------------


def test_without_javascript_the_same_form_reports_and_is_sealed_by_the_server(
    world: World, browser: Browser, voice_note: bytes
) -> None:
    name = f"Delta{uuid.uuid4().hex[:6]} Garments"
    factory = world.new_factory(name, "Dhaka")
    typed = what_a_worker_types("en", factory, voice_note)
    with phone(browser, world.intake, locale="en-GB", javascript=False) as (page, watch):
        page.goto(f"{world.intake}/en/")
        expect(page.locator("p#mode-nojs")).to_be_visible()
        expect(page.locator("p#mode-js")).to_be_hidden()
        fill_the_form(page, typed, name, javascript=False)
        page.locator("button#submit").click()
        receipt = shown_receipt(page)
        assert_phone_keeps_nothing(page, watch, receipt)

    [case_id] = wait_for(lambda: world.cases_at(factory), timeout=60, what="the no-JS case")
    case = world.case(case_id)
    assert case["server_encrypted"] is True, "the case says the server sealed it"
    assert_the_operator_reads_what_was_typed_and_nothing_else_holds_it(world, case, typed)


# --- 3. the page refuses keys the log does not vouch for ----------------------------------


def key_not_in_the_log(_world: World) -> tuple[str, str]:
    """A well-formed key nobody registered: no proof can exist for it."""
    _, public = generate_keypair()
    return key_id(public), b64encode(public)


def key_of_a_factory(world: World) -> tuple[str, str]:
    """A key that IS in the log (so it has a valid proof), registered to a factory."""
    factory_key = Org(unique_factory_code(), "factory")
    # In a thread of its own: Playwright's sync API keeps this thread's event loop running.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(publish_events, world.system.settings, [factory_key.registered()]).result()
    return factory_key.key_id, b64encode(factory_key.public)


@pytest.mark.parametrize(
    ("extra_key", "in_log", "reason"),
    [(key_not_in_the_log, False, "not-in-log"), (key_of_a_factory, True, "factory-key")],
    ids=["not-in-log", "factory-key"],
)
def test_the_page_refuses_to_seal_to_a_key_the_log_does_not_vouch_for(
    extra_key: Callable[[World], tuple[str, str]],
    in_log: bool,
    reason: str,
    world: World,
    browser: Browser,
) -> None:
    """Someone who can write the registry's database slips a buyer key into the factory's
    recipients, past the registry's API and so past the log. Intake hands it out with
    whatever proofs the log really has; the page checks them itself and seals nothing."""
    name = f"Harbor{uuid.uuid4().hex[:6]} Electronics"
    factory = world.new_factory(name, "Ho Chi Minh City")
    kid, public = extra_key(world)
    world.slip_buyer_key_into_the_registry(factory, kid, public)
    offered = wait_for(
        lambda: world.offered_with(factory, kid, proven=in_log),
        timeout=120,
        what="intake handing out the slipped key, with the log's proof if it has one",
    )
    assert offered["content"][kid] == public

    typed = what_a_worker_types("en", factory, b"")
    with phone(browser, world.intake, locale="en-GB") as (page, watch):
        page.goto(f"{world.intake}/en/")
        messages = messages_of(page)
        fill_the_form(page, typed, name, javascript=True, attach=False)
        page.locator("button#submit").click()
        expect(page.locator("p#error")).to_contain_text(messages[f"refused-{reason}"])
        expect(page.locator("section#receipt-view")).to_be_hidden()
        assert any(url.startswith(f"{world.intake}/api/recipients/") for _, url in watch.requests)
        assert watch.posts_to("/api/reports") == [], "nothing was sent"
        watch.assert_clean()


# --- 4. the crypto worker passes the shared vectors -----------------------------------------


VECTORS = REPO / "tests" / "vectors"


def shared_vectors() -> dict[str, Any]:
    """Every shared vector file, by its path under tests/vectors ("crypto/aead.json",
    "merkle/inclusion/0/happy-path.json"): the crypto vectors and the Merkle inclusion probes."""
    paths = sorted(VECTORS.glob("crypto/*.json")) + sorted(
        VECTORS.glob("merkle/inclusion/*/*.json")
    )
    files = {str(path.relative_to(VECTORS)): json.loads(path.read_text()) for path in paths}
    assert any(name.startswith("crypto/") for name in files), "the crypto vectors exist"
    return files


def vector_count(files: dict[str, Any]) -> int:
    """One per vector of a crypto file, one per inclusion probe file."""
    return sum(
        len(data["vectors"]) if name.startswith("crypto/") else 1 for name, data in files.items()
    )


def test_the_crypto_worker_passes_the_shared_vectors(world: World, browser: Browser) -> None:
    vectors = shared_vectors()
    with phone(browser, world.intake, locale="en-GB") as (page, watch):
        page.goto(f"{world.intake}/en/")
        reply = page.evaluate(
            """(vectors) => new Promise((resolve, reject) => {
              const script = document.querySelector('script[type="module"][src*="form.js"]');
              const url = new URL("crypto-worker.js", script.src);
              const worker = new Worker(url, { type: "module" });
              worker.onmessage = (event) => { worker.terminate(); resolve(event.data); };
              worker.onerror = (event) => reject(new Error(event.message));
              worker.postMessage({ id: 1, op: "selftest-vectors", vectors });
            })""",
            vectors,
        )
        watch.assert_clean()
    assert reply["ok"] is True, reply
    assert reply["result"]["failed"] == []
    assert reply["result"]["passed"] == vector_count(vectors), "every vector was run"

"""The worker's form as intake serves it (over HTTP, as `hotline up` runs it): the language
from the path or from Accept-Language, translated in every launch language, a label on every
control, the contract's headers on every kind of response and never a cookie, errors that
never repeat what was sent, the no-JavaScript search and report, and the page's weight.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from babel.messages.pofile import read_po

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.intake.pages import LANGUAGES
from hotline.shared.taxonomy import categories
from hotline.shared.web import Language
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code

REPO = Path(__file__).resolve().parents[2]
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
WORKER_CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
IMMUTABLE = "public, max-age=31536000, immutable"
ERROR_CODES = [
    "unknown-factory", "unknown-category", "bad-report", "text-too-long", "file-too-large",
    "too-many-files", "not-an-image", "bad-envelope", "wrong-recipients", "replayed",
    "stale-challenge", "bad-challenge", "no-operator-key", "log-unavailable", "busy",
    "case-exists",
]  # fmt: skip
MESSAGE_KEYS = {
    "checking-keys", "deriving", "sealing", "solving", "sending", "done",
    "refused-bad-checkpoint", "refused-not-in-log", "refused-bad-proof",
    "refused-key-mismatch", "refused-factory-key", "refused-identity-not-operator",
    "too-large", "too-many-files", "not-an-image", "network", "choose-factory",
    "choose-category", "empty-text", "recording", "record", "stop-recording", "mode-js",
    *(f"error-{code}" for code in ERROR_CODES),
}  # fmt: skip
RECEIPT_SHOWN = re.compile(r"^\d{4}( \d{4}){9}$")
PAGE_BUDGET = 100 * 1024  # HTML + CSS + the form's scripts, uncompressed, before the worker


# --- reading a page ---------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""

    @property
    def id(self) -> str:
        return self.attrs.get("id", "")


VOID = {"meta", "link", "input", "br", "img", "hr", "source", "wbr"}


class Page(HTMLParser):
    """The elements of an HTML page in document order, each with all the text inside it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    @classmethod
    def of(cls, html: str) -> Page:
        page = cls()
        page.feed(html)
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def by_id(self, element_id: str) -> Element:
        found = [e for e in self.elements if e.id == element_id]
        assert len(found) == 1, f"#{element_id}: {len(found)} elements"
        return found[0]

    def all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k) == v for k, v in attrs.items())
        ]


def translations(language: Language) -> dict[str, str]:
    path = REPO / "services/intake/locale" / language.locale / "LC_MESSAGES/messages.po"
    with path.open("rb") as po:
        return {
            m.id: m.string
            for m in read_po(po)
            if m.id and isinstance(m.id, str) and isinstance(m.string, str)
        }


# --- the running intake -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def intake(system: LocalSystem) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.settings.intake_url, timeout=60, verify=tls()) as client:
        yield client


@pytest.fixture(scope="module")
def log_vkey(system: LocalSystem) -> str:
    """The audit log's verifier key, as the log itself serves it (the page pins this one)."""
    response = httpx.get(f"{system.settings.audit_url}/vkey", timeout=30, verify=tls())
    assert response.status_code == 200
    return response.text.strip()


@dataclass(frozen=True)
class Factory:
    code: str
    name: str
    city: str


@pytest.fixture(scope="module")
def factory(system: LocalSystem) -> Factory:
    """A factory that can receive reports: an operator key, a linked buyer with its key."""
    admin = AdminApi(system.settings)
    buyer = unique_buyer_id()
    found = Factory(unique_factory_code(), "Pages Test Garments", f"Town{uuid.uuid4().hex[:8]}")
    admin.created("operator-keys", {"public_key": Party.new().public_b64})
    admin.created(
        "factories",
        {"code": found.code, "name": found.name, "country": "BD", "city": found.city},
    )
    admin.created(
        "buyers", {"buyer_id": buyer, "name": "Pages", "public_key": Party.new().public_b64}
    )
    admin.created("links", {"buyer_id": buyer, "factory": found.code})
    return found


def assert_common_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers


def assert_page_headers(response: httpx.Response) -> None:
    assert_common_headers(response)
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert response.headers["cache-control"] == "no-store"


Part = tuple[str, str] | tuple[str, str, bytes, str]  # (name, value) or (name, file, bytes, type)


def post_form(intake: httpx.Client, path: str, parts: list[Part]) -> httpx.Response:
    """POST multipart/form-data as a browser sends the form: an empty file input is a part
    with `filename=""` and no bytes."""
    boundary = f"----form{uuid.uuid4().hex}"
    body = b""
    for part in parts:
        disposition = f'Content-Disposition: form-data; name="{part[0]}"'
        if len(part) == 2:
            head, data = disposition, part[1].encode()
        else:
            head = f'{disposition}; filename="{part[1]}"\r\nContent-Type: {part[3]}'
            data = part[2]
        body += f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    return intake.post(path, content=body, headers=headers)


NO_FILE = b""


def asset_url(intake: httpx.Client, name: str) -> str:
    """A static file's versioned URL, as the English form page names its script."""
    script = Page.of(intake.get("/en/").text).all("script", type="module")[0]
    return script.attrs["src"].removesuffix("form.js") + name


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "/zh-hans/"),
        ("vi-VN,vi;q=0.9", "/vi/"),
        ("hi-IN", "/hi/"),
        ("bn-BD,bn;q=0.9", "/bn/"),
        ("id-ID,id;q=0.9,en-US;q=0.8", "/id/"),
        ("es-MX,es;q=0.9", "/es/"),
        ("fr-FR,de;q=0.5", "/en/"),
        (None, "/en/"),
    ],
)
def test_root_redirects_to_the_language_the_browser_prefers(
    intake: httpx.Client, accept_language: str | None, expected: str
) -> None:
    headers = {"accept-language": accept_language} if accept_language else {}
    response = intake.get("/", headers=headers, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == expected
    assert_common_headers(response)


@pytest.mark.parametrize("language", LANGUAGES, ids=lambda language: language.code)
def test_each_language_page_is_in_its_language(
    intake: httpx.Client, log_vkey: str, language: Language
) -> None:
    response = intake.get(f"/{language.code}/")
    assert response.status_code == 200
    assert_page_headers(response)
    page = Page.of(response.text)
    assert page.all("html")[0].attrs["lang"] == language.tag
    assert page.all("meta", name="hotline-lang")[0].attrs["content"] == language.code
    assert page.all("meta", name="hotline-log-vkey")[0].attrs["content"] == log_vkey
    translated = translations(language)
    assert page.by_id("cat-wages").attrs["value"] == "wages"
    wages = next(e for e in page.all("label") if e.attrs.get("for") == "cat-wages")
    assert wages.text == translated["Wages and overtime pay"]
    if language.locale != "en":
        assert wages.text != "Wages and overtime pay"
    safety = next(c for c in categories() if c.code == "safety")
    assert page.by_id("hint-safety").text == translated[safety.hint]
    messages = json.loads(page.by_id("messages").text)
    assert set(messages) == MESSAGE_KEYS
    assert all(messages.values())
    assert page.by_id("languages").tag == "nav"
    switch = [e for e in page.elements if e.tag == "a" and e.attrs.get("hreflang")]
    assert [(a.attrs["href"], a.attrs["hreflang"]) for a in switch] == [
        (f"/{other.code}/", other.tag) for other in LANGUAGES
    ]


@pytest.mark.parametrize("code", ["en", "zh-hans"])
def test_every_control_has_a_label_and_the_dom_contract_holds(
    intake: httpx.Client, code: str
) -> None:
    page = Page.of(intake.get(f"/{code}/").text)
    labelled = {e.attrs["for"] for e in page.all("label") if e.attrs.get("for")}
    controls = [
        e
        for e in page.elements
        if e.tag in {"input", "textarea", "select"} and e.attrs.get("type") != "hidden"
    ]
    assert len(controls) > 20
    assert [e.id for e in controls if e.id not in labelled] == []
    assert [e.id for e in page.all("button") if not e.text.strip()] == []

    form = page.by_id("report-form")
    assert (form.attrs["method"], form.attrs["action"], form.attrs["enctype"]) == (
        "post",
        f"/{code}/report",
        "multipart/form-data",
    )
    assert page.by_id("leave").attrs["href"] == "/today"
    assert "hidden" not in page.by_id("mode-nojs").attrs
    assert "hidden" in page.by_id("mode-js").attrs
    assert page.by_id("factory").attrs["name"] == "factory"
    assert page.by_id("factory-search").attrs["name"] == "q"
    assert page.by_id("factory-search-button").attrs["formaction"] == f"/{code}/search"
    assert page.by_id("factory-results").tag == "ul"
    assert "checked" in page.by_id("urgent-no").attrs
    assert page.by_id("urgent-yes").attrs["value"] == "yes"
    assert (page.by_id("text").tag, page.by_id("contact").tag) == ("textarea", "textarea")
    photos, voice = page.by_id("photos"), page.by_id("voice")
    assert (photos.attrs["name"], photos.attrs["accept"], "multiple" in photos.attrs) == (
        "photo",
        "image/*",
        True,
    )
    assert (voice.attrs["name"], voice.attrs["accept"]) == ("voice", "audio/*")
    assert "hidden" in page.by_id("record").attrs and page.by_id("record").attrs["type"] == "button"
    assert "hidden" in page.by_id("voice-preview").attrs
    assert page.by_id("submit").attrs["type"] == "submit"
    assert page.by_id("progress").attrs["role"] == "status"
    assert page.by_id("error").attrs["role"] == "alert"
    assert "hidden" in page.by_id("receipt-view").attrs
    assert page.by_id("receipt-code").text == ""


def test_a_static_asset_is_immutable_under_its_build(intake: httpx.Client) -> None:
    url = asset_url(intake, "form.css")
    response = intake.get(url)
    assert response.status_code == 200
    assert_common_headers(response)
    assert response.headers["content-type"].startswith("text/css")
    assert response.headers["content-security-policy"] == API_CSP
    assert response.headers["cache-control"] == IMMUTABLE
    other_build = re.sub(r"/v/[0-9a-f]{12}/", "/v/000000000000/", url)
    stale = intake.get(other_build)
    assert stale.status_code == 404
    assert stale.headers["cache-control"] == "no-store"


def test_the_crypto_worker_alone_may_compile_webassembly(intake: httpx.Client) -> None:
    response = intake.get(asset_url(intake, "crypto-worker.js"))
    assert response.status_code == 200
    assert_common_headers(response)
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["content-security-policy"] == WORKER_CSP
    assert response.headers["cache-control"] == IMMUTABLE
    form_js = intake.get(asset_url(intake, "form.js"))
    assert form_js.headers["content-security-policy"] == API_CSP


def test_an_api_response_has_the_api_headers(intake: httpx.Client, factory: Factory) -> None:
    response = intake.get("/api/factories", params={"q": factory.city})
    assert response.status_code == 200
    assert [match["code"] for match in response.json()] == [factory.code]
    assert_common_headers(response)
    assert response.headers["content-security-policy"] == API_CSP
    assert response.headers["cache-control"] == "no-store"


def test_the_neutral_page_says_nothing_of_the_hotline(intake: httpx.Client) -> None:
    response = intake.get("/today", headers={"accept-language": "zh-CN"})
    assert response.status_code == 200
    assert_page_headers(response)
    page = Page.of(response.text)
    assert page.all("html")[0].attrs["lang"] == "zh-Hans"
    assert not re.search(r"(?i)hotline|report|热线|反映", page.all("body")[0].text)
    assert page.all("form") == [] and page.all("script") == []


def test_an_unknown_language_is_a_404_that_does_not_repeat_the_path(
    intake: httpx.Client,
) -> None:
    marker = f"zz{uuid.uuid4().hex[:12]}"
    for response in (
        intake.get(f"/{marker}/", headers={"accept-language": "es"}),
        post_form(intake, f"/{marker}/report", [("text", marker)]),
        intake.post(f"/{marker}/search", data={"q": marker}),
    ):
        assert response.status_code == 404
        assert_page_headers(response)
        assert marker not in response.text
    assert (
        Page.of(intake.get(f"/{marker}/", headers={"accept-language": "es"}).text)
        .all("html")[0]
        .attrs["lang"]
        == "es"
    )


def test_error_pages_never_repeat_what_was_sent(intake: httpx.Client) -> None:
    marker = f"Secret{uuid.uuid4().hex[:12]}"
    not_a_form = intake.post(
        "/en/report", content=f"text={marker}".encode(), headers={"content-type": "text/plain"}
    )
    assert not_a_form.status_code == 400
    assert_page_headers(not_a_form)
    assert marker not in not_a_form.text
    nameless = f"--b\r\nContent-Disposition: form-data\r\n\r\n{marker}\r\n--b--\r\n"
    broken = intake.post(
        "/en/report",
        content=nameless.encode(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert broken.status_code == 400
    assert marker not in broken.text


def test_a_refused_report_shows_one_sentence_and_keeps_the_words(intake: httpx.Client) -> None:
    marker = f"F-NONE{uuid.uuid4().hex[:8].upper()}"
    words = f"<script>alert('{marker}')</script> the exit is locked"
    response = post_form(
        intake,
        "/en/report",
        [
            ("factory", marker),
            ("category", "safety"),
            ("urgent", "yes"),
            ("text", words),
            ("contact", ""),
            ("photo", "", NO_FILE, "application/octet-stream"),
        ],
    )
    assert response.status_code == 422
    assert_page_headers(response)
    page = Page.of(response.text)
    assert (
        page.by_id("error").text
        == translations(LANGUAGES[1])[
            "This factory code is not known. Please check it, or search for your factory."
        ]
    )
    assert page.by_id("text").text == words  # kept for the worker, and escaped:
    assert "<script>alert" not in response.text
    assert "checked" in page.by_id("urgent-yes").attrs
    assert "checked" in page.by_id("cat-safety").attrs


def test_a_report_without_a_topic_is_asked_for_one_in_the_workers_language(
    intake: httpx.Client,
) -> None:
    response = post_form(intake, "/vi/report", [("factory", "F-001"), ("text", "nước bẩn")])
    assert response.status_code == 422
    page = Page.of(response.text)
    assert (
        page.by_id("error").text == translations(LANGUAGES[2])["Please choose at least one topic."]
    )
    assert page.by_id("text").text == "nước bẩn"


@pytest.mark.parametrize("text", ["\x00" * 10, " \u200b\u2028\t\u202e "], ids=["nul", "invisible"])
def test_a_report_of_only_invisible_characters_is_asked_for_its_words(
    intake: httpx.Client, factory: Factory, text: str
) -> None:
    response = post_form(
        intake, "/en/report", [("factory", factory.code), ("category", "wages"), ("text", text)]
    )
    assert response.status_code == 422
    assert Page.of(response.text).by_id("error").text == "Please write what happened."


def test_a_report_of_an_emoji_newer_than_the_servers_unicode_is_taken(
    intake: httpx.Client, factory: Factory
) -> None:
    shaking_face = "\U0001fae8"  # Unicode 15: Python 3.11's Unicode 14 has it unassigned
    response = post_form(
        intake,
        "/en/report",
        [("factory", factory.code), ("category", "wages"), ("text", shaking_face)],
    )
    assert response.status_code == 200, response.text
    assert RECEIPT_SHOWN.match(Page.of(response.text).by_id("receipt-code").text)


def test_search_without_javascript_lists_the_matches_and_keeps_the_form(
    intake: httpx.Client, factory: Factory
) -> None:
    response = intake.post(
        "/bn/search",
        data={"q": factory.city.lower(), "text": "কারখানা", "category": ["wages", "hours"]},
    )
    assert response.status_code == 200
    assert_page_headers(response)
    page = Page.of(response.text)
    picks = page.all("input", name="factory_pick")
    assert [pick.attrs["value"] for pick in picks] == [factory.code]
    assert picks[0].attrs["type"] == "radio"
    assert page.by_id("text").text == "কারখানা"
    assert "checked" in page.by_id("cat-hours").attrs
    assert page.all("html")[0].attrs["lang"] == "bn"


def test_a_report_without_javascript_shows_the_receipt_once(
    intake: httpx.Client, factory: Factory
) -> None:
    response = post_form(
        intake,
        "/es/report",
        [
            ("factory", ""),
            ("factory_pick", factory.code),
            ("category", "wages"),
            ("urgent", "no"),
            ("text", "No nos pagan las horas extra"),
            ("contact", ""),
            ("photo", "", NO_FILE, "application/octet-stream"),
            ("voice", "", NO_FILE, "application/octet-stream"),
        ],
    )
    assert response.status_code == 200, response.text
    assert_page_headers(response)
    page = Page.of(response.text)
    assert "hidden" not in page.by_id("receipt-view").attrs
    assert RECEIPT_SHOWN.match(page.by_id("receipt-code").text)
    assert page.all("html")[0].attrs["lang"] == "es"
    assert page.all("form") == []  # the receipt page has nothing to send again


def test_the_form_weighs_less_than_100_kb_before_the_crypto_worker(
    intake: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    for code in ("en", "zh-hans", "hi"):
        html = intake.get(f"/{code}/").content
        css = intake.get(asset_url(intake, "form.css")).content
        # form.js and the module it imports (shared with the status page)
        script = b"".join(
            intake.get(asset_url(intake, name)).content for name in ("form.js", "page-common.js")
        )
        total = len(html) + len(css) + len(script)
        with capsys.disabled():
            print(
                f"\n  page weight /{code}/: HTML {len(html)} B + CSS {len(css)} B"
                f" + form.js and page-common.js {len(script)} B = {total} B"
            )
        assert total < PAGE_BUDGET

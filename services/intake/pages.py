"""The worker's form, server-rendered in the worker's language, and its no-JavaScript path.

- `GET /` sends the browser to `/<lang>/` by `Accept-Language` (English if none fits);
  `GET /<lang>/` is the form; an unknown language is a 404 page that does not repeat it.
- `POST /<lang>/search` (no JavaScript) shows the form again with the factories matching the
  words typed, as radio buttons, keeping what was already written.
- `POST /<lang>/report` (no JavaScript) reads the form into memory, hands it to
  `submit_plain` (sealed here, in memory) and shows the receipt once; a refusal shows the
  form again with one translated sentence and the worker's words kept (never the files).
- `GET /<lang>/status` is the status page: the worker types the receipt, and the page's
  script derives, fetches and opens on the device (services/intake/followup.py).
- `POST /<lang>/status` (no JavaScript) derives the lookup token and reply key from the
  receipt HERE, in memory, opens the replies, renders them and forgets the key: this path
  trusts the server with the receipt for the length of one request (the page says so).
  `POST /<lang>/answer` (no JavaScript) seals the worker's answer here, as the no-JS form
  does. Their answers are padded to the same length whatever the case holds.
- `GET /today` is the neutral page "leave quickly" goes to.

Nothing is kept between requests and no cookie is set: the language is in the path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from babel.dates import format_date
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData, UploadFile

from hotline.shared.config import Settings
from hotline.shared.deps import RuntimeDep
from hotline.shared.receipt import DerivedReceipt, ReceiptError, derive_receipt, normalise_receipt
from hotline.shared.registry import search_factories
from hotline.shared.reports import HEX_TOKEN
from hotline.shared.taxonomy import categories
from hotline.shared.web import (
    BadForm,
    FormTooLarge,
    Language,
    PageTemplates,
    SecurityHeaders,
    StaticAssets,
    negotiate,
    read_form,
)

from .conversation import (
    STATUS_BUCKET,
    accept_answer,
    case_status,
    find_case,
    open_messages,
    seal_plain_answer,
)
from .reports import ERROR_STATUS
from .state import IntakeDep, IntakeState, Refused
from .submission import MAX_TEXT_BYTES, PlainReport, says_something, strip_photo, submit_plain

HERE = Path(__file__).parent

# The launch languages, in the order the switch lists them, each named in its own script.
LANGUAGES = (
    Language("zh_Hans", "简体中文"),
    Language("en", "English"),
    Language("vi", "Tiếng Việt"),
    Language("hi", "हिन्दी"),
    Language("bn", "বাংলা"),
    Language("id", "Bahasa Indonesia"),
    Language("es", "Español"),
)
DEFAULT_LANGUAGE = LANGUAGES[1]
BY_CODE = {language.code: language for language in LANGUAGES}

# The no-JS form: at most intake's body limit (app.py), three photos and one voice note.
NOJS_MAX_BODY = 24 * 1024 * 1024
MAX_PHOTOS = 3
MAX_FILE_PARTS = 8  # more than a browser sends for the two file inputs; counted per field below
MAX_FIELD_BYTES = 256 * 1024  # submit_plain refuses long text with its own, translated, code
SEARCH_LENGTH = range(2, 65)  # as GET /api/factories

pages = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Pages:
    """What the routes render with (kept in `app.state.pages`)."""

    templates: PageTemplates
    assets: StaticAssets


async def pages_of(request: Request) -> Pages:
    found: Pages = request.app.state.pages
    return found


PagesDep = Annotated[Pages, Depends(pages_of)]


def install_pages(app: FastAPI, settings: Settings) -> None:
    """Add the form's routes, the static files under `/static/v/<build>/` and the security
    headers of every response (call after the API routers: `/{lang}/` must not shadow them).
    `settings` is the service's; the pages need nothing from it today."""
    del settings
    assets = StaticAssets(HERE / "static")
    templates = PageTemplates(
        HERE / "templates",
        HERE / "locale",
        [language.locale for language in LANGUAGES],
        globals={"asset": assets.url, "languages": LANGUAGES},
    )
    app.state.pages = Pages(templates, assets)
    app.include_router(pages)
    app.mount(assets.prefix, assets)
    app.add_middleware(SecurityHeaders)


@dataclass
class FormFields:
    """What the worker wrote, to show the form again (files are never kept)."""

    factory: str = ""
    q: str = ""
    categories: list[str] = field(default_factory=list)
    urgent: bool = False
    text: str = ""
    contact: str = ""

    @classmethod
    def posted(cls, form: FormData) -> FormFields:
        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        picked = text("factory_pick").strip()
        return cls(
            factory=(picked or text("factory")).strip().upper(),
            q=text("q").strip(),
            categories=[c for c in form.getlist("category") if isinstance(c, str)],
            urgent=text("urgent") == "yes",
            text=text("text"),
            contact=text("contact"),
        )


@pages.get("/")
async def choose_language(request: Request) -> RedirectResponse:
    language = negotiate(request.headers.get("accept-language"), LANGUAGES, DEFAULT_LANGUAGE)
    return RedirectResponse(
        f"/{language.code}/",
        status_code=status.HTTP_303_SEE_OTHER,
        headers={"vary": "Accept-Language"},
    )


@pages.get("/today", response_class=HTMLResponse)
async def today(request: Request, page: PagesDep) -> HTMLResponse:
    language = negotiate(request.headers.get("accept-language"), LANGUAGES, DEFAULT_LANGUAGE)
    shown = format_date(date.today(), format="full", locale=language.locale)
    return _html(page, language, "today.html", today=shown)


@pages.get("/{lang}/", response_class=HTMLResponse)
async def form(lang: str, request: Request, page: PagesDep, state: IntakeDep) -> HTMLResponse:
    language = BY_CODE.get(lang)
    if language is None:
        return _not_found(request, page)
    return await _form(page, state, language, FormFields())


@pages.post("/{lang}/search", response_class=HTMLResponse)
async def search(
    lang: str, request: Request, page: PagesDep, state: IntakeDep, runtime: RuntimeDep
) -> HTMLResponse:
    read = await _posted(lang, request, page, state)
    if isinstance(read, HTMLResponse):
        return read
    language, posted = read
    fields = FormFields.posted(posted)
    matches: list[dict[str, str]] = []
    if len(fields.q) in SEARCH_LENGTH:
        matches = await search_factories(runtime.store, fields.q)
    return await _form(page, state, language, fields, matches=matches, searched=True)


@pages.post("/{lang}/report", response_class=HTMLResponse)
async def report(
    lang: str, request: Request, page: PagesDep, state: IntakeDep, runtime: RuntimeDep
) -> HTMLResponse:
    read = await _posted(lang, request, page, state)
    if isinstance(read, HTMLResponse):
        return read
    language, posted = read
    fields = FormFields.posted(posted)
    missing = _missing(fields)
    if missing:
        return await _form(page, state, language, fields, error=missing)
    photos = [await upload.read() for upload in _uploads(posted, "photo")]
    voices = _uploads(posted, "voice")
    if len(photos) > MAX_PHOTOS or len(voices) > 1:
        return await _form(page, state, language, fields, refused="too-many-files")
    plain = PlainReport(
        factory=fields.factory,
        categories=fields.categories,
        urgent=fields.urgent,
        language=language.code,
        text=fields.text,
        contact=fields.contact,
        photos=photos,
        voice=await voices[0].read() if voices else None,
        voice_type=voices[0].content_type if voices else None,
    )
    try:
        receipt = await submit_plain(runtime, state, plain)
    except Refused as refused:
        return await _form(page, state, language, fields, refused=refused.code)
    return _html(page, language, "receipt.html", receipt=receipt)


@pages.get("/{lang}/status", response_class=HTMLResponse)
async def status_page(
    lang: str, request: Request, page: PagesDep, state: IntakeDep
) -> HTMLResponse:
    language = BY_CODE.get(lang)
    if language is None:
        return _not_found(request, page)
    return await _status(page, state, language)


@pages.post("/{lang}/status", response_class=HTMLResponse)
async def status_nojs(
    lang: str, request: Request, page: PagesDep, state: IntakeDep, runtime: RuntimeDep
) -> HTMLResponse:
    """The status without JavaScript: derive, look up, open the replies, forget."""
    read = await _posted(lang, request, page, state)
    if isinstance(read, HTMLResponse):
        return read
    language, posted = read
    typed = posted.get("receipt")
    try:
        receipt = normalise_receipt(typed if isinstance(typed, str) else "")
    except ReceiptError:
        return await _status(page, state, language, refused="bad-receipt")
    try:
        state.admit_lookup()
        derived = await _nojs_derive(state, receipt)
        case = await find_case(runtime, state, derived.lookup_token.hex())
        shown = await case_status(runtime, case)
    except Refused as refused:
        return await _status(page, state, language, refused=refused.code)
    result = {
        **{name: shown[name] for name in ("case_id", "status", "received", "acknowledged")},
        "feedback": shown["feedback"],
        "updated": shown["updated"],
        "messages": open_messages(shown, derived.reply_private),
        "answers": [{"day": answer["day"]} for answer in shown["answers"]],
        "lookup_token": derived.lookup_token.hex(),
    }
    del derived, receipt  # nothing of the receipt outlives the request
    return await _status(page, state, language, result=result)


@pages.post("/{lang}/answer", response_class=HTMLResponse)
async def answer_nojs(
    lang: str, request: Request, page: PagesDep, state: IntakeDep, runtime: RuntimeDep
) -> HTMLResponse:
    """The worker's answer without JavaScript, sealed here in memory to the operator keys."""
    read = await _posted(lang, request, page, state)
    if isinstance(read, HTMLResponse):
        return read
    language, posted = read
    token, text = posted.get("lookup_token"), posted.get("text")
    if not isinstance(token, str) or not HEX_TOKEN.fullmatch(token):
        return await _status(page, state, language, refused="wrong-receipt")
    if not isinstance(text, str) or not says_something(text):
        return await _status(page, state, language, refused="bad-report")
    if len(text.encode()) > MAX_TEXT_BYTES:
        return await _status(page, state, language, refused="text-too-long")
    uploads = _uploads(posted, "photo")
    voices = _uploads(posted, "voice")
    if len(uploads) > MAX_PHOTOS or len(voices) > 1:
        return await _status(page, state, language, refused="too-many-files")
    try:
        state.admit_lookup()
        async with state.nojs_turn():  # the lookup, Pillow and sealing, one at a time
            case = await find_case(runtime, state, token)
            files = [
                b"image/jpeg\n" + await asyncio.to_thread(strip_photo, await upload.read())
                for upload in uploads
            ]
            for voice in voices:
                voice_type = voice.content_type or ""
                if not voice_type.startswith("audio/"):
                    raise Refused("bad-report", "a voice note must be a sound recording")
                files.append(voice_type.encode("ascii", "replace") + b"\n" + await voice.read())
            message = await seal_plain_answer(runtime, case, text, files)
            await accept_answer(runtime, message, case)
    except Refused as refused:
        return await _status(page, state, language, refused=refused.code)
    return await _status(page, state, language, answered=True)


async def _nojs_derive(state: IntakeState, receipt: str) -> DerivedReceipt:
    """Argon2id of the receipt on the server, through the no-JS queue (one at a time, as
    the no-JS form's sealing): the queue is this path's throttle instead of a proof of work."""
    async with state.nojs_turn():
        return await asyncio.to_thread(derive_receipt, receipt)


async def _status(
    page: Pages,
    state: IntakeState,
    language: Language,
    *,
    result: dict[str, Any] | None = None,
    refused: str | None = None,
    answered: bool = False,
) -> HTMLResponse:
    """The status page, padded to a multiple of STATUS_BUCKET bytes (an HTML comment at the
    end) so that its length does not tell what the case holds."""
    try:
        vkey = await state.log_vkey()
    except Refused:
        vkey = ""
    status_code = status.HTTP_200_OK
    if refused is not None:
        refused = refused if refused in ERROR_STATUS else "bad-report"
        status_code = ERROR_STATUS[refused]
    body = page.templates.render(
        language.locale,
        "status.html",
        language=language,
        vkey=vkey,
        result=result,
        error=refused,
        answered=answered,
    ).encode()
    filler = b"<!--  -->"
    target = -(-(len(body) + len(filler)) // STATUS_BUCKET) * STATUS_BUCKET
    padding = b"<!-- " + b" " * (target - len(body) - len(filler)) + b" -->"
    return HTMLResponse(body + padding, status_code=status_code)


def _missing(fields: FormFields) -> str | None:
    """The page's own message for a form sent without what every report needs."""
    if not fields.factory:
        return "choose-factory"
    if not fields.categories:
        return "choose-category"
    if not says_something(fields.text):
        return "empty-text"
    return None


async def _posted(
    lang: str, request: Request, page: Pages, state: IntakeState
) -> tuple[Language, FormData] | HTMLResponse:
    """The language and the posted form of a no-JS POST, or the page that answers it
    instead (unknown language, malformed or oversized form)."""
    language = BY_CODE.get(lang)
    if language is None:
        return _not_found(request, page)
    try:
        posted = await read_form(
            request,
            max_bytes=NOJS_MAX_BODY,
            max_files=MAX_FILE_PARTS,
            max_field_bytes=MAX_FIELD_BYTES,
        )
    except BadForm:
        return _bad_form(page, language)
    except FormTooLarge:
        return await _form(page, state, language, FormFields(), refused="file-too-large")
    return language, posted


def _uploads(form: FormData, name: str) -> list[UploadFile]:
    """The files posted under `name`; an empty file input posts an empty, unnamed part."""
    return [
        value
        for value in form.getlist(name)
        if isinstance(value, UploadFile) and (value.filename or value.size)
    ]


async def _form(
    page: Pages,
    state: IntakeDep,
    language: Language,
    fields: FormFields,
    *,
    matches: list[dict[str, str]] | None = None,
    searched: bool = False,
    error: str | None = None,
    refused: str | None = None,
) -> HTMLResponse:
    """The form page. `error` is one of the page's message keys (status 422); `refused` a
    refusal code of the API's list, shown as its `error-<code>` message with its status."""
    try:
        vkey = await state.log_vkey()
    except Refused:
        vkey = ""  # the page's script then refuses to seal (bad-checkpoint); no-JS still works
    status_code = status.HTTP_200_OK
    if refused is not None:
        refused = refused if refused in ERROR_STATUS else "bad-report"
        error, status_code = f"error-{refused}", ERROR_STATUS[refused]
    elif error is not None:
        status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    return _html(
        page,
        language,
        "form.html",
        status_code=status_code,
        vkey=vkey,
        categories=categories(),
        fields=fields,
        matches=matches or [],
        searched=searched,
        error=error,
    )


def _not_found(request: Request, page: Pages) -> HTMLResponse:
    """The 404 page, in the browser's language; it never repeats the path asked for."""
    language = negotiate(request.headers.get("accept-language"), LANGUAGES, DEFAULT_LANGUAGE)
    return _html(
        page, language, "error.html", status_code=status.HTTP_404_NOT_FOUND, problem="not-found"
    )


def _bad_form(page: Pages, language: Language) -> HTMLResponse:
    return _html(
        page, language, "error.html", status_code=status.HTTP_400_BAD_REQUEST, problem="bad-form"
    )


def _html(
    page: Pages, language: Language, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    body = page.templates.render(language.locale, template, language=language, **context)
    return HTMLResponse(body, status_code=status_code)

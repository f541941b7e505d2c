"""The worker's form, server-rendered in the worker's language, and its no-JavaScript path.

- `GET /` sends the browser to `/<lang>/` by `Accept-Language` (English if none fits);
  `GET /<lang>/` is the form; an unknown language is a 404 page that does not repeat it.
- `POST /<lang>/search` (no JavaScript) shows the form again with the factories matching the
  words typed, as radio buttons, keeping what was already written.
- `POST /<lang>/report` (no JavaScript) reads the form into memory, hands it to
  `submit_plain` (sealed here, in memory) and shows the receipt once; a refusal shows the
  form again with one translated sentence and the worker's words kept (never the files).
- `GET /today` is the neutral page "leave quickly" goes to.

Nothing is kept between requests and no cookie is set: the language is in the path.
"""

from __future__ import annotations

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
from hotline.shared.registry import search_factories
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

from .reports import ERROR_STATUS
from .state import IntakeDep, IntakeState, Refused
from .submission import PlainReport, submit_plain

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


def pages_of(request: Request) -> Pages:
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


def _missing(fields: FormFields) -> str | None:
    """The page's own message for a form sent without what every report needs."""
    if not fields.factory:
        return "choose-factory"
    if not fields.categories:
        return "choose-category"
    if not fields.text.strip():
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

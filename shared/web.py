"""What every server-rendered page of the platform shares: strict headers on every response, a
versioned static mount, Jinja2 templates translated through Babel catalogues, and the choice
of a language from `Accept-Language`.

- `SecurityHeaders` (ASGI middleware) adds the headers of `headers_for`: every response gets
  `nosniff` and `no-referrer`; an HTML page the page CSP and `no-store`; the crypto worker
  the worker CSP (the only place `'wasm-unsafe-eval'` appears); everything else the API CSP
  and, unless it set its own (the immutable static files), `no-store`.
- `StaticAssets` reads a folder once at start-up and serves it from memory under
  `/static/v/<build>/`, where `<build>` is a hash of every file's name and bytes: what a
  browser caches for a year under one URL can never change. An unknown build is a 404.
- `PageTemplates` renders Jinja2 templates (autoescaped) with the i18n extension, one
  environment per locale, its translations compiled in memory from the `.po` catalogues at
  start-up (no compiled `.mo` is kept anywhere).
- `read_form` reads a posted form into memory only: an uploaded photo never touches the
  disk, as Starlette's own parser would write any file over 1 MiB to a temporary file.

Nothing here sets a cookie or reads anything about the client but `Accept-Language`.
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData, Headers, MutableHeaders
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "API_CSP",
    "IMMUTABLE",
    "BadForm",
    "BodyLimit",
    "MAX_API_BODY",
    "ConnectSrcFor",
    "PAGE_CSP",
    "WORKER_CSP",
    "FormTooLarge",
    "Language",
    "PageTemplates",
    "SecurityHeaders",
    "StaticAssets",
    "headers_for",
    "negotiate",
    "origin_of",
    "page_csp_connecting_to",
    "read_form",
]

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# libsodium.js compiles its inlined WebAssembly: only the worker's own response allows it.
WORKER_CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
WORKER_SCRIPT = "crypto-worker.js"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_STORE = "no-store"
# Fixed here rather than read from the machine's MIME tables, which differ (.js above all).
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain",
    ".md": "text/markdown",
}


def headers_for(path: str, content_type: str) -> dict[str, str]:
    """The security headers of a response to `path` with this Content-Type. Cache-Control is
    forced on pages only; for anything else it is the default when the response has none."""
    common = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
    if content_type.split(";")[0].strip().lower() == "text/html":
        return common | {"content-security-policy": PAGE_CSP, "cache-control": NO_STORE}
    if path.endswith(WORKER_SCRIPT):
        return common | {"content-security-policy": WORKER_CSP}
    return common | {"content-security-policy": API_CSP}


class SecurityHeaders:
    """ASGI middleware: every HTTP response carries the headers of `headers_for`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                wanted = headers_for(path, headers.get("content-type", ""))
                is_page = "cache-control" in wanted
                for name, value in wanted.items():
                    headers[name] = value
                if not is_page and "cache-control" not in headers:
                    headers["cache-control"] = NO_STORE
            await send(message)

        await self.app(scope, receive, send_with_headers)


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL (what a CSP source names)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_csp_connecting_to(origin: str) -> str:
    """The pages' CSP with `origin` added to `connect-src`: the signed-in pages (buyer page,
    operator console) exchange codes for tokens at Keycloak's token endpoint."""
    own = "connect-src 'self'"
    if PAGE_CSP.count(own) != 1:
        raise RuntimeError("the page CSP no longer has one `connect-src 'self'` to extend")
    return PAGE_CSP.replace(own, f"{own} {origin}")


class ConnectSrcFor:
    """ASGI middleware, outside SecurityHeaders: on the HTML pages (the responses that got
    PAGE_CSP), `page_csp_connecting_to(origin)` instead. Every other header stays as
    SecurityHeaders set it."""

    def __init__(self, app: ASGIApp, origin: str) -> None:
        self.app = app
        self.policy = page_csp_connecting_to(origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-security-policy") == PAGE_CSP:
                    headers["content-security-policy"] = self.policy
            await send(message)

        await self.app(scope, receive, send_with_policy)


# The body limit of the services that take no attachments (triage, notify, the audit log):
# a message of at most 64 KiB sealed and in base64, a registry change or a cosignature, with
# room. Intake's is its own (attachments travel in its report bodies).
MAX_API_BODY = 1024 * 1024


class BodyLimit:
    """ASGI middleware: refuse a request body over `limit` bytes with 413 (`{detail, code}`),
    counted as it arrives (a chunked body has no Content-Length to trust), before anything is
    parsed or stored. Every service has one: a body is never read without a bound."""

    def __init__(self, app: ASGIApp, limit: int, detail: str, code: str = "too-large") -> None:
        self.app = app
        self.limit = limit
        self.detail = detail
        self.answer = json.dumps({"detail": detail, "code": code}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.detail)
            return message

        await self.app(scope, limited, send)

    async def _too_large(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(self.answer)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.answer})


class BodyTooLarge(HTTPException):
    """Raised from the body stream; an HTTPException so that FastAPI's body parsing lets it
    through (it answers any other error there with 400)."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str


class StaticAssets:
    """The files under `directory` (dot files left out), read once, served from memory by this
    ASGI app mounted at `prefix`; `url(name)` is the versioned URL templates use."""

    def __init__(self, directory: Path, prefix: str = "/static/v") -> None:
        self.prefix = prefix.rstrip("/")
        self.files: dict[str, StaticFile] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            name = path.relative_to(directory).as_posix()
            if any(part.startswith(".") for part in name.split("/")):
                continue
            body = path.read_bytes()
            # name, a separator no name holds, then the file's own hash: unambiguous.
            digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
            self.files[name] = StaticFile(body, _media_type(path))
        self.build = digest.hexdigest()[:12]

    def url(self, name: str) -> str:
        """The URL of static file `name` (e.g. "form.js"); raises LookupError for a file
        that is not there, so a template naming a missing asset fails loudly."""
        if name not in self.files:
            raise LookupError(f"no static file {name!r}")
        return f"{self.prefix}/{self.build}/{name}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        mounted_at: str = scope.get("root_path", "")
        if path.startswith(mounted_at):
            path = path[len(mounted_at) :]
        build, _, name = path.lstrip("/").partition("/")
        found = self.files.get(name) if build == self.build else None
        response: Response
        if scope["method"] not in ("GET", "HEAD"):
            response = JSONResponse({"detail": "Method Not Allowed"}, status_code=405)
        elif found is None:
            response = JSONResponse({"detail": "Not Found"}, status_code=404)
        else:
            response = Response(
                found.body if scope["method"] == "GET" else b"",
                media_type=found.media_type,
                headers={"cache-control": IMMUTABLE, "content-length": str(len(found.body))},
            )
        await response(scope, receive, send)


def _media_type(path: Path) -> str:
    known = MEDIA_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Language:
    """A language a page is offered in: its Babel locale (`zh_Hans`), BCP 47 tag (`zh-Hans`,
    for `<html lang>` and `hreflang`), URL path code (`zh-hans`) and name in its own script."""

    locale: str
    name: str

    @property
    def tag(self) -> str:
        return self.locale.replace("_", "-")

    @property
    def code(self) -> str:
        return self.tag.lower()


def negotiate(
    accept_language: str | None, languages: Sequence[Language], default: Language
) -> Language:
    """The language of `languages` that `Accept-Language` prefers, else `default`.

    Each tag the browser names is also tried as language-script (`zh-CN` is `zh_Hans`,
    through Babel's likely subtags) and as the bare language, after the tags it names itself.
    """
    by_locale = {language.locale.lower(): language for language in languages}
    preferred: list[str] = []
    for tag in _accepted_tags(accept_language or ""):
        preferred.append(tag.replace("-", "_"))
        try:
            parsed = Locale.parse(tag, sep="-")
        except (ValueError, TypeError, UnknownLocaleError):
            continue
        if parsed.script:
            preferred.append(f"{parsed.language}_{parsed.script}")
        preferred.append(parsed.language)
    aliases = {locale.split("_")[0]: locale for locale in by_locale}  # "zh" -> "zh_hans"
    chosen = negotiate_locale(preferred, by_locale, aliases=aliases)
    return by_locale[chosen.lower()] if chosen else default


MAX_ACCEPTED_TAGS = 16  # a header longer than any browser sends is not worth reading further


def _accepted_tags(header: str) -> list[str]:
    """The tags of an Accept-Language header, most wanted first (q=0 and `*` left out)."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:MAX_ACCEPTED_TAGS]):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and weight > 0:
            weighted.append((-weight, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


class PageTemplates:
    """Jinja2 templates of `directory`, one autoescaping environment per locale with
    `jinja2.ext.i18n` installed (new-style gettext: `_("text %(n)s", n=1)` escapes `n`).

    Each locale's translations come from `<locale_dir>/<locale>/LC_MESSAGES/messages.po`,
    compiled in memory here; a missing catalogue is an error at start-up."""

    def __init__(
        self,
        directory: Path,
        locale_dir: Path,
        locales: Iterable[str],
        globals: dict[str, Any] | None = None,
    ) -> None:
        loader = jinja2.FileSystemLoader(directory)
        self.environments: dict[str, jinja2.Environment] = {}
        for locale in locales:
            environment = jinja2.Environment(
                loader=loader,
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            translations = compiled_translations(locale_dir, locale)
            environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            # `tojson` output stays HTML-safe (Jinja escapes <, >, & and ') and readable: no
            # \u escapes that would double the weight of every non-Latin sentence.
            environment.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
            environment.globals.update(globals or {})
            self.environments[locale] = environment

    def render(self, locale: str, template: str, **context: Any) -> str:
        return self.environments[locale].get_template(template).render(**context)


def compiled_translations(locale_dir: Path, locale: str) -> Translations:
    """The translations of one locale's `messages.po`, compiled to a `.mo` in memory (fuzzy
    entries are left out, as gettext leaves them out)."""
    path = locale_dir / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    mo = io.BytesIO()
    write_mo(mo, catalog)
    mo.seek(0)
    return Translations(mo, domain="messages")


class FormTooLarge(Exception):
    """The posted form is larger than the caller allows (nothing of it is kept)."""


class BadForm(Exception):
    """The body is not a form that can be read (malformed multipart, too many parts)."""


class _InMemoryMultiPart(MultiPartParser):
    # Starlette spools an upload to a temporary file above this size; the body is capped
    # below it (read_form), so every upload stays in memory and nothing reaches the disk.
    spool_max_size = 1 << 40


async def read_form(
    request: Request, *, max_bytes: int, max_files: int, max_field_bytes: int
) -> FormData:
    """The posted form (multipart or urlencoded), read into memory only. Raises FormTooLarge
    past `max_bytes` of body, BadForm for anything that is not a readable form."""
    if max_bytes >= _InMemoryMultiPart.spool_max_size:
        raise ValueError("max_bytes must stay below the in-memory spool size")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FormTooLarge
    stream = _limited(request.stream(), max_bytes)
    try:
        if content_type == "multipart/form-data":
            parser = _InMemoryMultiPart(
                request.headers,
                stream,
                max_files=max_files,
                max_fields=64,
                max_part_size=max_field_bytes,
            )
            return await parser.parse()
        if content_type == "application/x-www-form-urlencoded":
            return await FormParser(Headers(raw=request.headers.raw), stream).parse()
    except MultiPartException:
        raise BadForm from None
    raise BadForm


async def _limited(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > max_bytes:
            raise FormTooLarge
        yield chunk

"""Intake: the worker's form, the anonymous report API and the follow-up by receipt (status
page, answers). Stores only ciphertext (the no-JS form is sealed here, in memory), announces
through the outbox, and consumes the operators' messages and status changes for the status
page.

A worker has no account, so nothing here asks for a token. Nothing about the caller is
read or kept: no address, no user agent, no precise time (see shared/logpolicy.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.disclosure import DISCLOSURE_ERROR_STATUS
from hotline.shared.service import Runtime, add_health, service_lifespan

from .attachments import cases
from .collections import COLLECTIONS
from .conversation import TOPICS, record_event
from .followup import followup
from .pages import install_pages
from .reports import answer_http, answer_invalid, answer_refused, api
from .state import IntakeState, Refused

AUDIENCE = "hotline-intake"
# Three photos and a voice note of 4 MiB each, base64 in JSON, and the rest.
MAX_BODY_BYTES = 24 * 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def setup(runtime: Runtime) -> None:
        runtime.consume(
            "intake",
            list(TOPICS),
            lambda event: record_event(runtime, event),
            deduplicate=False,  # idempotent: messages stored by id, statuses set
        )

    service = service_lifespan(settings, AUDIENCE, COLLECTIONS, setup)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            service(app),
            httpx.AsyncClient(base_url=settings.audit_url, timeout=10.0) as audit,
        ):
            app.state.intake = IntakeState(settings, audit)
            yield

    app = FastAPI(
        title="Hotline intake",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(api)
    app.include_router(followup)
    app.include_router(cases)
    answer_errors(app, DISCLOSURE_ERROR_STATUS)
    app.add_exception_handler(Refused, answer_refused)
    app.add_exception_handler(RequestValidationError, answer_invalid)
    app.add_exception_handler(StarletteHTTPException, answer_http)
    add_health(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    install_pages(app, settings)  # last: its security headers wrap every response
    return app


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, counted as it arrives (a chunked
    body has no Content-Length to trust), before anything is parsed or stored."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        await self.app(scope, limited, send)


class BodyTooLarge(HTTPException):
    """Raised from the body stream; an HTTPException so that FastAPI's body parsing lets it
    through (it answers any other error there with 400)."""

    def __init__(self) -> None:
        super().__init__(413, "the report is too large")


async def _too_large(send: Send) -> None:
    body = b'{"detail":"the report is too large","code":"file-too-large"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

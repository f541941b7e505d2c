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
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.disclosure import DISCLOSURE_ERROR_STATUS
from hotline.shared.service import Runtime, add_health, service_lifespan
from hotline.shared.web import BodyLimit

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
    app.add_middleware(
        BodyLimit, limit=MAX_BODY_BYTES, detail="the report is too large", code="file-too-large"
    )
    install_pages(app, settings)  # last: its security headers wrap every response
    return app

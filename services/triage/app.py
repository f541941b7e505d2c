"""Triage: classifies each submitted case, sets its deadline, escalates the urgent ones;
records each case's conversation; serves the operator's case and message API and the
platform admin's registry API."""

from __future__ import annotations

from fastapi import FastAPI

from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.disclosure import DISCLOSURE_ERROR_STATUS
from hotline.shared.service import Runtime, add_health, service_lifespan

from . import admin
from .cases import cases
from .collections import COLLECTIONS
from .consumer import TOPICS, handle_event
from .messages import messages
from .workflow import workflow

AUDIENCE = "hotline-triage"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def setup(runtime: Runtime) -> None:
        runtime.consume(
            "triage",
            TOPICS,
            lambda event: handle_event(runtime, event),
            # idempotent by construction: cases and messages are stored under their own ids,
            # and a change of a case is decided on its current state
            deduplicate=False,
        )

    app = FastAPI(
        title="Hotline triage",
        lifespan=service_lifespan(settings, AUDIENCE, COLLECTIONS, setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(cases)
    app.include_router(messages)
    app.include_router(workflow)
    for router in admin.ROUTERS:
        app.include_router(router)
    answer_errors(app, {**admin.ERROR_STATUS, **DISCLOSURE_ERROR_STATUS})
    add_health(app)
    return app

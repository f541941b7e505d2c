"""Intake: the anonymous report API. Stores only ciphertext, announces through the outbox.

A worker has no account, so nothing here asks for a token. Nothing about the caller is
read or kept: no address, no user agent, no precise time (see shared/logpolicy.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.service import add_health, service_lifespan

from .collections import COLLECTIONS
from .reports import ERROR_STATUS, recipients, reports

AUDIENCE = "hotline-intake"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Hotline intake",
        lifespan=service_lifespan(settings, AUDIENCE, COLLECTIONS, lambda runtime: None),
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(recipients)
    app.include_router(reports)
    answer_errors(app, ERROR_STATUS)
    add_health(app)
    return app

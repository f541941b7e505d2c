"""Notify: puts each submitted case into the digest of every buyer linked to its factory,
serves a buyer its own digest (content only: identity never reaches notify's store), and
takes a buyer's questions about the cases it received (sealed to the operator keys)."""

from __future__ import annotations

from fastapi import FastAPI

from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.disclosure import DISCLOSURE_ERROR_STATUS
from hotline.shared.service import Runtime, add_health, service_lifespan

from .collections import COLLECTIONS
from .consumer import add_to_digests
from .digest import digests
from .questions import operator_keys, questions

AUDIENCE = "hotline-notify"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def setup(runtime: Runtime) -> None:
        runtime.consume(
            "notify",
            ["hotline.report.submitted"],
            lambda event: add_to_digests(runtime, event),
            deduplicate=False,  # idempotent by construction: one item per `buyer:case` id
        )

    app = FastAPI(
        title="Hotline notify",
        lifespan=service_lifespan(settings, AUDIENCE, COLLECTIONS, setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(digests)
    app.include_router(operator_keys)
    app.include_router(questions)
    answer_errors(app, DISCLOSURE_ERROR_STATUS)
    add_health(app)
    return app

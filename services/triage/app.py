"""Triage: classifies each submitted case, sets its deadline, escalates the urgent ones;
serves the operator's case API and the platform admin's registry API."""

from __future__ import annotations

from fastapi import FastAPI

from hotline.shared.config import Settings
from hotline.shared.service import Runtime, add_health, service_lifespan

from .admin import admin
from .cases import cases
from .consumer import triage_report

AUDIENCE = "hotline-triage"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def setup(runtime: Runtime) -> None:
        runtime.consume(
            "triage", ["hotline.report.submitted"], lambda event: triage_report(runtime, event)
        )

    outboxes = ["triage_cases", "disclosures", "factories", "buyers", "links", "operator_keys"]
    app = FastAPI(
        title="Hotline triage",
        lifespan=service_lifespan(settings, AUDIENCE, outboxes, setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(cases)
    app.include_router(admin)
    add_health(app)
    return app

"""Triage: classifies each submitted case, sets its deadline, escalates the urgent ones and
groups reports of one incident; records each case's conversation; runs the regulation
clocks and retention on schedulers; serves the operator's case, message and statistics API,
the operator console, and the platform admin's registry API.

`clock` is what the schedulers read (the machine's UTC time unless a test or benchmark gives
its own, shared/clock.py)."""

from __future__ import annotations

from fastapi import FastAPI

from hotline.shared.bus import Batch
from hotline.shared.clock import Clock, SystemClock
from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.disclosure import DISCLOSURE_ERROR_STATUS
from hotline.shared.service import Runtime, add_health, service_lifespan
from hotline.shared.web import MAX_API_BODY, BodyLimit

from . import admin
from .cases import cases
from .clocks import watch_clocks
from .collections import COLLECTIONS
from .console import console, install_console
from .consumer import REPORTS, TOPICS, handle_event, triage_reports
from .messages import messages
from .retention import enforce_retention, retention
from .stats import stats
from .workflow import workflow

AUDIENCE = "hotline-triage"


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()

    def setup(runtime: Runtime) -> None:
        runtime.consume(
            "triage",
            TOPICS,
            lambda event: handle_event(runtime, event),
            # idempotent by construction: cases and messages are stored under their own keys,
            # and a change of a case is decided on its current state
            deduplicate=False,
            # a poll's reports in one insert and one write per incident they join
            batch=Batch(REPORTS, lambda events: triage_reports(runtime, events)),
        )
        runtime.background("clocks", lambda: watch_clocks(runtime, clock))
        runtime.background("retention", lambda: enforce_retention(runtime, clock))

    app = FastAPI(
        title="Hotline triage",
        lifespan=service_lifespan(settings, AUDIENCE, COLLECTIONS, setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(cases)
    app.include_router(messages)
    app.include_router(workflow)
    app.include_router(stats)
    app.include_router(retention)
    app.include_router(console)
    for router in admin.ROUTERS:
        app.include_router(router)
    answer_errors(app, {**admin.ERROR_STATUS, **DISCLOSURE_ERROR_STATUS})
    add_health(app)
    app.add_middleware(BodyLimit, limit=MAX_API_BODY, detail="the request is too large")
    app.state.clock = clock  # the routes' time (statistics' delay), the same as the schedulers'
    install_console(app, settings)  # last: its security headers wrap every response
    return app

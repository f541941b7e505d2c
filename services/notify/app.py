"""Notify: buyers' signed digests. It records what each buyer linked to a case's factory is
to be told (the report's content envelope sealed to the buyer, the case's changes; identity
never reaches notify's store), issues each buyer's numbered, chained, signed digests on its
schedule and at once for critical cases (issuance.py), hands them out by cursor
(digests.py), pushes digests and urgent alerts to buyers' webhooks (webhooks.py,
deliverer.py), takes a buyer's questions and acknowledgements (questions.py), and serves
the buyer page (pages.py).

`clock` is what the scheduler and the digests' hours read (the machine's UTC time unless a
test or benchmark gives its own, shared/clock.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from hotline.shared.bus import Batch
from hotline.shared.clock import Clock, SystemClock
from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.disclosure import DISCLOSURE_ERROR_STATUS
from hotline.shared.service import Runtime, add_health, service_lifespan
from hotline.shared.web import MAX_API_BODY, BodyLimit

from .collections import COLLECTIONS
from .consumer import BATCHED, TOPICS, apply_poll, handle_event
from .digests import digests, vkey
from .issuance import Issuer
from .pages import install_pages
from .questions import operator_keys, questions
from .signing import digest_signer
from .webhooks import setup as setup_webhooks
from .webhooks import webhooks

AUDIENCE = "hotline-notify"


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()

    def setup(runtime: Runtime) -> None:
        issuer = Issuer(runtime.store, digest_signer(runtime.settings), clock, runtime.relay.poke)
        app.state.issuer = issuer
        runtime.consume(
            "notify",
            TOPICS,
            lambda event: handle_event(issuer, event),
            deduplicate=False,  # idempotent by construction: records keyed by buyer and case
            # a poll's reports and case events: each buyer's records in one insert
            batch=Batch(BATCHED, lambda events: apply_poll(issuer, events)),
        )
        runtime.background("digest-scheduler", issuer.scheduler)
        setup_webhooks(runtime)  # queues each issued digest and alert, delivers them

    app = FastAPI(
        title="Hotline notify",
        lifespan=service_lifespan(settings, AUDIENCE, COLLECTIONS, setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(digests)
    app.include_router(vkey)
    app.include_router(operator_keys)
    app.include_router(questions)
    app.include_router(webhooks)
    answer_errors(app, DISCLOSURE_ERROR_STATUS)
    add_health(app)
    app.add_middleware(BodyLimit, limit=MAX_API_BODY, detail="the request is too large")
    install_pages(app, settings)  # last: its security headers wrap every response
    return app

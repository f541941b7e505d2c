"""The operator console, served by triage (issue 18): sign in, the queue, a case opened with
the operator's own key, notes, messages to the worker, claims and status changes.

- `GET /console/` is the page (English for now: every sentence is in gettext `_()` in the
  template, so that a catalogue can follow as the buyer page's did).
- `GET /console/signed-in` is where Keycloak sends the sign-in window back: its script hands
  the authorization code (in the URL fragment, so it never reaches a server) to the console
  that opened the window, over a BroadcastChannel of this origin, and is closed by it.

Everything else happens in the browser (services/triage/static/console.js), against triage's
own API (`/api/cases...`, services/triage/cases.py, workflow.py, messages.py): the sign-in
is the authorization code flow with PKCE (S256) on the public client `hotline-console`, in a
window of its own, so that the verifier and the tokens stay in the page's memory and nothing
is ever stored; the operator's key file is read inside the crypto worker, which keeps the key
and opens and seals every envelope with the worker form's pinned libsodium (copies made by
scripts/vendor-js.sh); the page's network code only ever sees envelopes.

Same machinery and headers as the worker's and the buyer's pages (hotline.shared.web), and,
as on the buyer page, `connect-src` also names Keycloak's origin, for its token endpoint.
Installed last by app.py, so its security headers wrap every response of triage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from hotline.shared.config import Settings
from hotline.shared.taxonomy import categories
from hotline.shared.web import (
    ConnectSrcFor,
    Language,
    PageTemplates,
    SecurityHeaders,
    StaticAssets,
    origin_of,
)

from .contract import STATUSES, TRANSITIONS

HERE = Path(__file__).parent
# English only so far; the catalogue is the template's own texts (a header-only .po), so the
# page renders through the same translation machinery the buyer page uses, and a language
# is a catalogue in locale/ away.
LANGUAGE = Language("en", "English")
LOCALE_DIR = HERE / "locale"

CLIENT_ID = "hotline-console"  # deploy/keycloak/hotline-realm.json
PREFIX = "/console"  # the page, its sign-in return and its static files: one prefix to route
SIGNED_IN_PATH = f"{PREFIX}/signed-in"

console = APIRouter(include_in_schema=False)


@dataclass
class ConsolePages:
    """What the routes render with (kept in `app.state.console_pages`)."""

    templates: PageTemplates
    settings: Settings


async def console_pages_of(request: Request) -> ConsolePages:
    found: ConsolePages = request.app.state.console_pages
    return found


ConsolePagesDep = Annotated[ConsolePages, Depends(console_pages_of)]


def install_console(app: FastAPI, settings: Settings) -> None:
    """The console's static files under `/console/static/v/<build>/` and the security headers
    of every response (call last, after every router; the `console` router holds the pages)."""
    assets = StaticAssets(HERE / "static", prefix=f"{PREFIX}/static/v")
    templates = PageTemplates(
        HERE / "templates", LOCALE_DIR, [LANGUAGE.locale], globals={"asset": assets.url}
    )
    app.state.console_pages = ConsolePages(templates, settings)
    app.mount(assets.prefix, assets)
    app.add_middleware(SecurityHeaders)
    # Added after SecurityHeaders, so it runs outside it and sees the headers it set.
    app.add_middleware(ConnectSrcFor, origin=origin_of(settings.keycloak_issuer))


@console.get(PREFIX)
async def to_the_console() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=status.HTTP_303_SEE_OTHER)


@console.get(f"{PREFIX}/", response_class=HTMLResponse)
async def console_page(page: ConsolePagesDep) -> HTMLResponse:
    return _html(
        page,
        "console.html",
        issuer=page.settings.keycloak_issuer,
        client_id=CLIENT_ID,
        signed_in_path=SIGNED_IN_PATH,
        categories=categories(),
        statuses=STATUSES,
        # the state machine, so that the page offers only the moves there are (in workflow
        # order: the next step first, closing last)
        transitions={
            status: [move for move in STATUSES if move in moves]
            for status, moves in TRANSITIONS.items()
        },
    )


@console.get(SIGNED_IN_PATH, response_class=HTMLResponse)
async def signed_in(page: ConsolePagesDep) -> HTMLResponse:
    return _html(page, "signed-in.html")


def _html(page: ConsolePages, template: str, **context: Any) -> HTMLResponse:
    body = page.templates.render(LANGUAGE.locale, template, language=LANGUAGE, **context)
    return HTMLResponse(body)

"""The buyer page, served by notify (issue 19 contract §6): sign in, list, verify, open, export.

- `GET /buyer/` sends the browser to `/buyer/<lang>/` by `Accept-Language` (English if none
  fits); `GET /buyer/<lang>/` is the page; an unknown language is a 404 page.
- `GET /buyer/signed-in` is where Keycloak sends the sign-in window back: its script hands
  the authorization code (in the URL fragment, so it never reaches a server) to the page that
  opened the window, over a BroadcastChannel of this origin, and is closed by it.

Everything else happens in the browser (services/notify/static/buyer.js): the sign-in is the
authorization code flow with PKCE (S256) on the public client `hotline-buyer-page`, in a
window of its own so that the verifier, the tokens, the digests and the key stay in the
page's memory (and the key in its crypto worker) and nothing is ever stored; the digests come
from `GET /api/digests` and are checked against notify's digest key, pinned in the page; the
buyer's key file is read on the device; the CSV is made in the page.

Same machinery and headers as the worker's pages (hotline.shared.web), with one difference,
for notify's pages only: `connect-src` also names Keycloak's origin, as the page exchanges the
code for tokens (and refreshes them) at Keycloak's token endpoint. The sign-in and sign-out
are navigations of a window, which no CSP directive governs, so `form-action` stays 'self'.
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
    negotiate,
    origin_of,
)

from .digests import IssuerDep

HERE = Path(__file__).parent

LANGUAGES = (Language("en", "English"), Language("zh_Hans", "简体中文"))
DEFAULT_LANGUAGE = LANGUAGES[0]
BY_CODE = {language.code: language for language in LANGUAGES}

CLIENT_ID = "hotline-buyer-page"  # deploy/keycloak/hotline-realm.json
PREFIX = "/buyer"  # the page, its sign-in return and its static files: one prefix to route
SIGNED_IN_PATH = f"{PREFIX}/signed-in"

pages = APIRouter(include_in_schema=False)


@dataclass
class BuyerPages:
    """What the routes render with (kept in `app.state.buyer_pages`)."""

    templates: PageTemplates
    assets: StaticAssets
    settings: Settings


async def buyer_pages_of(request: Request) -> BuyerPages:
    found: BuyerPages = request.app.state.buyer_pages
    return found


BuyerPagesDep = Annotated[BuyerPages, Depends(buyer_pages_of)]


def install_pages(app: FastAPI, settings: Settings) -> None:
    """Add the buyer page's routes, its static files under `/buyer/static/v/<build>/` and the
    security headers of every response (call last, after the API routers)."""
    assets = StaticAssets(HERE / "static", prefix=f"{PREFIX}/static/v")
    templates = PageTemplates(
        HERE / "templates",
        HERE / "locale",
        [language.locale for language in LANGUAGES],
        globals={"asset": assets.url, "languages": LANGUAGES},
    )
    app.state.buyer_pages = BuyerPages(templates, assets, settings)
    app.include_router(pages)
    app.mount(assets.prefix, assets)
    app.add_middleware(SecurityHeaders)
    # Added after SecurityHeaders, so it runs outside it and sees the headers it set.
    app.add_middleware(ConnectSrcFor, origin=origin_of(settings.keycloak_issuer))


@pages.get(PREFIX)
@pages.get(f"{PREFIX}/")
async def choose_language(request: Request) -> RedirectResponse:
    language = negotiate(request.headers.get("accept-language"), LANGUAGES, DEFAULT_LANGUAGE)
    return RedirectResponse(
        f"{PREFIX}/{language.code}/",
        status_code=status.HTTP_303_SEE_OTHER,
        headers={"vary": "Accept-Language"},
    )


@pages.get(SIGNED_IN_PATH, response_class=HTMLResponse)
async def signed_in(request: Request, page: BuyerPagesDep) -> HTMLResponse:
    language = negotiate(request.headers.get("accept-language"), LANGUAGES, DEFAULT_LANGUAGE)
    return _html(page, language, "signed-in.html")


@pages.get(PREFIX + "/{lang}/", response_class=HTMLResponse)
async def buyer_page(
    lang: str, request: Request, page: BuyerPagesDep, issuer: IssuerDep
) -> HTMLResponse:
    language = BY_CODE.get(lang)
    if language is None:
        return _not_found(request, page)
    return _html(
        page,
        language,
        "buyer.html",
        vkey=issuer.signer.verifier().vkey(),  # the key notify signs with: what the page pins
        issuer=page.settings.keycloak_issuer,
        client_id=CLIENT_ID,
        signed_in_path=SIGNED_IN_PATH,
        categories=categories(),
    )


def _not_found(request: Request, page: BuyerPages) -> HTMLResponse:
    """The 404 page, in the browser's language; it never repeats the path asked for."""
    language = negotiate(request.headers.get("accept-language"), LANGUAGES, DEFAULT_LANGUAGE)
    return _html(page, language, "error.html", status_code=status.HTTP_404_NOT_FOUND)


def _html(
    page: BuyerPages, language: Language, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    body = page.templates.render(language.locale, template, language=language, **context)
    return HTMLResponse(body, status_code=status_code)

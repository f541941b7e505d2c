"""How CLI commands reach the services: the bearer token and the HTTP client.

The token comes from HOTLINE_TOKEN (for scripts), else from the login cache: a file only its
owner can read, written by `hotline login` (device grant) or `hotline login --user NAME` (a
local demo user), holding the access token, its refresh token and the realm it came from. An
expired cached token is refreshed with its refresh token, so a person can read at their own
pace; a cache from another realm (another system's Keycloak) is never used. When a service
refuses a token (401) or it cannot be refreshed, the error says how to get a new one, which
depends on where the token came from.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import jwt

from hotline.shared.config import Settings

from .http import tls

CLI_CLIENT_ID = "hotline-cli"
# Refresh a little before expiry, so a token does not lapse on its way to the service.
EXPIRY_MARGIN_SECONDS = 10


@dataclass(frozen=True)
class Credential:
    """A bearer token and what to do for a new one when a service refuses it."""

    token: str
    renew: str


def token_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "hotline" / "token.json"


def _login_command(demo_user: str | None) -> str:
    return f"hotline login --user {demo_user}" if demo_user else "hotline login"


def token_user(access_token: str) -> str:
    """The user name in an access token, for messages only (the signature is not checked)."""
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "?"
    return str(claims.get("preferred_username", "?"))


def save_token(settings: Settings, response: dict[str, Any], demo_user: str | None) -> Path:
    """Write a token response of `settings`' realm to the cache, mode 0600 from the first byte.

    `demo_user` is the local demo user it was issued to by the password grant, None for a
    device login (it decides what a later error tells the user to run).
    """
    path = token_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {
        "token_url": settings.token_url,
        "demo_user": demo_user,
        "access_token": response["access_token"],
        "refresh_token": response.get("refresh_token"),
        "expires_at": time.time() + float(response.get("expires_in", 60)),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two commands may refresh at once
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)
    return path


def token_request(settings: Settings, **form: str) -> httpx.Response:
    """One request to the realm's token endpoint as the public `hotline-cli` client."""
    try:
        return httpx.post(
            settings.token_url,
            data={**form, "client_id": CLI_CLIENT_ID},
            timeout=10,
            verify=tls(),
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach Keycloak at {settings.keycloak_url}: {exc}. "
            "Is the system up (`hotline up`)?"
        ) from None


def token_error(response: httpx.Response) -> str:
    """Keycloak's reason for refusing a token request, in one line."""
    try:
        body = response.json()
        return str(body.get("error_description") or body["error"])
    except (ValueError, KeyError, AttributeError):
        return f"HTTP {response.status_code}"


def bearer_token(settings: Settings) -> Credential:
    """The token to send, from HOTLINE_TOKEN or the login cache (refreshed when expired)."""
    token = os.environ.get("HOTLINE_TOKEN", "").strip()
    if token:
        return Credential(
            token,
            "HOTLINE_TOKEN holds a token the service refused: set a new one (locally "
            "`export HOTLINE_TOKEN=$(hotline dev-token --user NAME)`), or `unset "
            "HOTLINE_TOKEN` and sign in with `hotline login` (`hotline login --user NAME` "
            "for a local demo user)",
        )
    path = token_cache_path()
    try:
        record = json.loads(path.read_text())
        demo_user = record.get("demo_user")
        cached = (record["token_url"], record["access_token"], float(record["expires_at"]))
    except FileNotFoundError:
        raise click.ClickException(
            "not logged in: run `hotline login` (on a local system `hotline login --user "
            "NAME` signs in as a demo user), or set HOTLINE_TOKEN"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise click.ClickException(
            f"{path} is not a login cache of this hotline version: run `hotline login` again"
        ) from None
    token_url, access_token, expires_at = cached
    login = _login_command(demo_user)
    if token_url != settings.token_url:
        raise click.ClickException(
            f"your login is for another system ({token_url}); run `{login}` to sign in "
            f"to this one ({settings.keycloak_url})"
        )
    renew = f"your login was refused: run `{login}` again"
    if expires_at > time.time() + EXPIRY_MARGIN_SECONDS:
        return Credential(str(access_token), renew)
    if record.get("refresh_token"):
        response = token_request(
            settings, grant_type="refresh_token", refresh_token=record["refresh_token"]
        )
        if response.status_code == 200:
            # Keycloak rotates refresh tokens; keep the old one if a realm does not.
            fresh = {"refresh_token": record["refresh_token"], **response.json()}
            save_token(settings, fresh, demo_user)
            return Credential(str(fresh["access_token"]), renew)
    raise click.ClickException(f"your login has expired: run `{login}` again")


def call(
    method: str,
    url: str,
    *,
    auth: Credential | None = None,
    json_body: Any = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """One request to a service; a clear CLI error for every failure, the JSON otherwise.

    A 401 (the service refused the token: expired, another realm's...) says how to get a new
    token, from `auth.renew`.
    """
    headers = {"Authorization": f"Bearer {auth.token}"} if auth else {}
    try:
        response = httpx.request(
            method, url, headers=headers, json=json_body, params=params, timeout=30, verify=tls()
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach {url}: {exc}. Is the system up (`hotline up`)?"
        ) from None
    if response.status_code == 401 and auth is not None:
        raise click.ClickException(
            f"{method} {url}: the token was refused ({_detail(response)}). {auth.renew}"
        )
    if response.status_code >= 400:
        raise click.ClickException(
            f"{method} {url} failed ({response.status_code}): {_detail(response)}"
        )
    return response.json() if response.content else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text[:300]
    if isinstance(detail, list):  # FastAPI validation errors: say which field and why
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    return str(detail)

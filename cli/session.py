"""How CLI commands reach the services: the bearer token and the HTTP client.

The token comes from HOTLINE_TOKEN, else from the login cache written by `hotline login`
(a file only its owner can read). An expired cached token is refreshed with its refresh
token; if that fails the command says to log in again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
import httpx

from hotline.shared.config import Settings

CLI_CLIENT_ID = "hotline-cli"


def token_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "hotline" / "token.json"


def save_token(response: dict[str, Any]) -> Path:
    """Write the token response to the cache, mode 0600 from the first byte."""
    path = token_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {
        "access_token": response["access_token"],
        "refresh_token": response.get("refresh_token"),
        "expires_at": time.time() + float(response.get("expires_in", 60)),
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)
    return path


def token_request(settings: Settings, **form: str) -> httpx.Response:
    """One request to the realm's token endpoint as the public `hotline-cli` client."""
    return httpx.post(settings.token_url, data={**form, "client_id": CLI_CLIENT_ID}, timeout=10)


def bearer_token(settings: Settings) -> str:
    token = os.environ.get("HOTLINE_TOKEN")
    if token:
        return token.strip()
    path = token_cache_path()
    if not path.exists():
        raise click.ClickException(
            "not logged in: run `hotline login` (or set HOTLINE_TOKEN, e.g. from "
            "`hotline dev-token --user NAME` on a local system)"
        )
    record = json.loads(path.read_text())
    if record["expires_at"] > time.time() + 10:
        return str(record["access_token"])
    if record.get("refresh_token"):
        response = token_request(
            settings, grant_type="refresh_token", refresh_token=record["refresh_token"]
        )
        if response.status_code == 200:
            save_token(response.json())
            return str(response.json()["access_token"])
    raise click.ClickException("your login has expired: run `hotline login` again")


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """One request to a service; a clear CLI error for every failure, the JSON otherwise."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method, url, headers=headers, json=json_body, params=params, timeout=30
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach {url}: {exc}. Is the system up (`hotline up`)?"
        ) from None
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

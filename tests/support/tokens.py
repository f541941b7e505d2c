"""Access tokens of the session's users, each minted once and reused while it has time left.

Every password grant costs Keycloak a login (a session, a signed token, a password check),
and the tests ask for the same users' tokens hundreds of times a run; a test that needs a
token of its own (expired, refused, of a user whose roles it changes) calls
`hotline.cli.engines.keycloak.password_token` itself.
"""

from __future__ import annotations

import threading
import time

import jwt

from hotline.cli.engines import keycloak
from hotline.shared.config import Settings

# A token is reused only while it has this long left: the longest single use in the suite
# (a fuzzing run of one role, a page session) stays well inside it. Tokens live 300 s.
MIN_LIFE_LEFT_S = 150.0

_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_lock = threading.Lock()


def password_token(settings: Settings, username: str, password: str) -> str:
    """`keycloak.password_token`, reused while it has MIN_LIFE_LEFT_S left."""
    key = (settings.token_url, username, password)
    with _lock:
        cached = _tokens.get(key)
    if cached is not None and cached[1] - time.time() > MIN_LIFE_LEFT_S:
        return cached[0]
    token = keycloak.password_token(settings, username, password)
    expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
    with _lock:
        _tokens[key] = (token, expires)
    return token

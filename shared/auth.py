"""Offline validation of Keycloak access tokens for the FastAPI services.

A service checks each bearer token against the realm's signing keys (JWKS), fetched once and
cached; Keycloak is not asked about each request. Checks: signature (RS256 or ES256, by a key of
the realm's JWKS with `use` = `sig`), `iss` equal to `settings.keycloak_issuer`, `aud`
containing the service's audience, `exp` (required) with `settings.token_leeway` seconds of
clock skew (30 by default), `typ` = `Bearer` (refuses Keycloak ID and refresh tokens), and a
subject.

Key rotation: a token whose `kid` is not in the cache causes ONE refetch of the JWKS, and at most
one such refetch per `refresh_interval` seconds, so a flood of made-up key ids cannot hammer
Keycloak; a key still unknown after that is refused. The cache is also refetched when older
than `max_age` seconds, so a key removed from the realm stops being accepted.

Wiring, in a service:

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with TokenVerifier(settings, "hotline-intake") as verifier:
            install_token_verifier(app, verifier)
            yield

    @router.get("/cases", dependencies=[Depends(require_role("triage-analyst"))])
    async def cases(principal: CurrentPrincipal) -> ...

Error answers never contain the token; 401 answers carry `WWW-Authenticate: Bearer` (RFC 6750).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any, Self

import httpx
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .config import Settings
from .roles import Role

ALGORITHMS = ("RS256", "ES256")
REFRESH_INTERVAL = 30.0  # at most one unknown-kid refetch per this many seconds
MAX_AGE = 600.0  # refetch a cached JWKS older than this


class AuthError(Exception):
    """The token is refused. The message is safe to return to the caller (no token in it)."""


class KeySetUnavailable(Exception):
    """The realm's JWKS could not be fetched: the service cannot judge tokens (answer 503)."""


@dataclass(frozen=True)
class Principal:
    """Who called: Keycloak subject, realm roles, `org` claim (buyer or factory id), client."""

    subject: str
    roles: frozenset[str]
    org: str | None
    client: str | None

    def has_any_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


class TokenVerifier:
    """Validates access tokens for one audience against the realm JWKS (cached)."""

    def __init__(
        self,
        settings: Settings,
        audience: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
        max_age: float = MAX_AGE,
    ) -> None:
        self.audience = audience
        self.issuer = settings.keycloak_issuer
        self.leeway = settings.token_leeway
        self.jwks_url = settings.jwks_url
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        self._own_client = http_client is None
        self._client = http_client or httpx.AsyncClient(timeout=10)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._last_unknown_kid_refresh: float | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def verify(self, token: str) -> Principal:
        """The principal of a valid access token; `AuthError` if it is not valid."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise AuthError("token algorithm not accepted")
        if not isinstance(kid, str) or not kid:
            raise AuthError("token has no key id")
        key = await self._signing_key(kid)
        if key.algorithm_name != alg:
            raise AuthError("token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token not issued for this service") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token from another issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature invalid") from None
        except jwt.PyJWTError as error:
            raise AuthError(f"token invalid: {type(error).__name__}") from None
        return _principal(claims)

    async def _signing_key(self, kid: str) -> jwt.PyJWK:
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at > self.max_age:
                await self._fetch()
            elif kid not in self._keys and (
                self._last_unknown_kid_refresh is None
                or now - self._last_unknown_kid_refresh >= self.refresh_interval
            ):
                self._last_unknown_kid_refresh = now
                await self._fetch()
            key = self._keys.get(kid)
        if key is None:
            raise AuthError("token signed by an unknown key")
        return key

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self.jwks_url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise KeySetUnavailable(f"cannot fetch {self.jwks_url}: {error}") from None
        self._keys = _signing_keys(document)
        self._fetched_at = time.monotonic()


def _signing_keys(document: object) -> dict[str, jwt.PyJWK]:
    """Signature keys of a JWKS document by kid; encryption keys and unusable keys skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeySetUnavailable("JWKS document has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg") not in ALGORITHMS or not isinstance(entry.get("kid"), str):
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(dict(entry))
        except jwt.PyJWTError:
            continue
    return keys


def _principal(claims: Mapping[str, Any]) -> Principal:
    if claims.get("typ") != "Bearer":
        raise AuthError("not an access token")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("token has no subject")
    realm_access = claims.get("realm_access")
    raw_roles = realm_access.get("roles") if isinstance(realm_access, Mapping) else None
    roles = frozenset(r for r in raw_roles or () if isinstance(r, str))
    org = claims.get("org")
    client = claims.get("azp")
    return Principal(
        subject=subject,
        roles=roles,
        org=org if isinstance(org, str) and org else None,
        client=client if isinstance(client, str) else None,
    )


# --- FastAPI -------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Keycloak access token")


def install_token_verifier(app: FastAPI, verifier: TokenVerifier) -> None:
    """Make `verifier` the one `current_principal` uses (call in the lifespan)."""
    app.state.token_verifier = verifier


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": challenge},
    )


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <token>`; 401 if missing or invalid."""
    if credentials is None:
        raise _unauthorized("bearer token required")
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("no TokenVerifier installed: call install_token_verifier in lifespan")
    try:
        return await verifier.verify(credentials.credentials)
    except AuthError as error:
        raise _unauthorized(str(error), "invalid_token") from None
    except KeySetUnavailable:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="cannot check tokens now, try again later",
        ) from None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting a principal with ANY of `roles` (403 otherwise)."""
    if not roles:
        raise ValueError("require_role needs at least one role")

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_any_role(*roles):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail="requires role " + " or ".join(roles),
            )
        if Role.FACTORY_MANAGER not in roles and principal.has_any_role(Role.FACTORY_MANAGER):
            # Fail closed on a token that also carries factory-manager (a realm mistake): a
            # factory manager sees its own factory's aggregates and nothing else, ever.
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail="a factory manager's token is refused here",
            )
        return principal

    return dependency


def require_org_match(principal: Principal, org: str) -> None:
    """403 unless the principal's `org` claim is exactly `org` (a buyer or factory id)."""
    if principal.org is None or principal.org != org:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="not permitted for this organisation",
        )

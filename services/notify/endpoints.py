"""What a buyer's webhook endpoint may be, checked when it is registered and at every delivery.

- HTTPS only, a host, a port in range, no user name or password in the URL.
- The host is resolved and EVERY address it resolves to must be allowed: a public address; in
  development a loopback address too (a receiver on the developer's machine). Private,
  link-local, shared (CGNAT), reserved and multicast addresses are refused everywhere, so that
  a buyer cannot make notify post to its own network (server-side request forgery).
- A delivery connects to an address checked just before, not to whatever the name resolves
  to a moment later (a `Target` per address): the certificate is still verified for the
  URL's host name (it is the TLS server name), so a name re-pointed at a private address
  after the check (DNS rebinding) reaches nothing but the addresses that were checked.

Refusals are `EndpointRefused`, whose message is written for the buyer (answered 422).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from hotline.shared.config import Settings

MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(ValueError):
    """A webhook URL, or the address its host resolves to, is not allowed; says why."""


def parse_endpoint_url(url: str) -> httpx.URL:
    """The URL if its form is allowed (https, a host, a valid port, no credentials)."""
    if len(url) > MAX_URL_LENGTH:
        raise EndpointRefused(f"a webhook URL is at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise EndpointRefused("this is not a URL") from None
    if parsed.scheme != "https":
        raise EndpointRefused("a webhook URL must use https")
    if not parsed.host:
        raise EndpointRefused("a webhook URL needs a host")
    if parsed.userinfo:
        raise EndpointRefused("a webhook URL carries no user name or password")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise EndpointRefused("the port must be between 1 and 65535")
    return parsed


def refusal_of_address(address: IPAddress, settings: Settings) -> str | None:
    """Why notify must not post to `address`, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    if address.is_loopback:
        if settings.environment == "development":
            return None
        return "a loopback address (allowed in development only)"
    if not address.is_global or address.is_multicast:
        return "a private, link-local, shared, reserved or multicast address"
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address is itself), in resolver order."""
    if _is_literal(host):
        return [ipaddress.ip_address(host)]
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise EndpointRefused(f"the host {host} does not resolve") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop a zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise EndpointRefused(f"the host {host} does not resolve")
    return addresses


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: the URL with the checked address in place of the host name,
    the Host header and the TLS server name of the original URL."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]


async def checked_targets(url: str, settings: Settings) -> list[Target]:
    """Resolve and check `url` now: a target per address, in resolver order (a delivery
    tries the next when one does not connect); EndpointRefused if its form or any of its
    addresses is refused."""
    parsed = parse_endpoint_url(url)
    addresses = await resolve(parsed.host, parsed.port or 443)
    for address in addresses:
        refusal = refusal_of_address(address, settings)
        if refusal is not None:
            verb = "is" if _is_literal(parsed.host) else "resolves to"
            raise EndpointRefused(f"the host {parsed.host} {verb} {refusal}")
    if _is_literal(parsed.host):  # nothing was resolved, so nothing to pin
        return [Target(parsed, {}, {})]
    authority = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    return [
        Target(
            parsed.copy_with(host=str(address)),
            {"host": authority},
            {"sni_hostname": parsed.host},
        )
        for address in addresses
    ]


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

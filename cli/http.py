"""The one TLS context of a `hotline` process, shared by all its HTTP calls.

httpx builds a TLS context for every client it makes, reading the whole CA bundle (about
30 ms of CPU), and `httpx.get` makes a client per call: waiting for a service by polling its
`/healthz` five times a second cost a fifth of a core that way. The context honours
SSL_CERT_FILE and SSL_CERT_DIR as httpx's default does (it is httpx's own).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls() -> ssl.SSLContext:
    """httpx's default verifying context, made once per process (pass it as `verify=`)."""
    return httpx.create_ssl_context()

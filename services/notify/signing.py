"""Notify's digest signing key: Ed25519, the key family of the audit log's checkpoints, and
published the same way (`GET /vkey`, a C2SP signed-note verifier key).

`HOTLINE_DIGEST_SIGNING_KEY` (64 hex digits) in production, where the settings refuse to
start without it; in development the key is generated once and kept in
`<data>/notify/digest-signing.key` (0600), shared by every notify process on that data
directory. The key name is `HOTLINE_DIGEST_ORIGIN` (default "hotline.local/digests"). It is
a key of its own, not the log's: a digest and a checkpoint are different statements.
"""

from __future__ import annotations

from hotline.shared.config import Settings
from hotline.shared.keys import configured_signing_key
from hotline.shared.tlog.note import Ed25519Signer


def digest_signer(settings: Settings) -> Ed25519Signer:
    path = settings.data / "notify" / "digest-signing.key"
    key = configured_signing_key(settings.digest_signing_key, path)
    return Ed25519Signer(settings.digest_origin, bytes(key))

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
from hotline.shared.keys import load_or_create_signing_key, signing_key_from_hex
from hotline.shared.tlog.note import Ed25519Signer


def digest_signer(settings: Settings) -> Ed25519Signer:
    if settings.digest_signing_key:
        key = signing_key_from_hex(settings.digest_signing_key)
    else:
        folder = settings.data / "notify"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = load_or_create_signing_key(folder / "digest-signing.key")
    return Ed25519Signer(settings.digest_origin, bytes(key))

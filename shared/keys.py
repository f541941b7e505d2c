"""Key material: X25519 recipient key pairs, derived key ids, key files, the Ed25519 signing key.

Contracts (DESIGN.md "Cryptography"):

- Every recipient organisation owns an X25519 key pair; private keys never reach a server.
- A key id is derived from the public key, never chosen by hand::

      key_id(pub) = "x25519:" + hex(SHA-256(b"hotline-key-id\\x00" || pub))

  The full 32-byte digest is kept (64 hex digits). Key ids are what the audit log's
  non-exposure policy reasons about ("every identity recipient is an operator key"), so they
  must resist collisions, not only second preimages: a 128-bit truncation would leave a
  2^64 birthday search for two keys sharing an id. The domain label keeps these ids apart
  from any other SHA-256 of the same 32 bytes; the ``x25519:`` prefix names the algorithm so
  another key type can be added without ambiguity.
- Keys travel as standard base64 (RFC 4648 section 4, with padding), decoded strictly:
  no whitespace inside, no missing padding, no non-canonical trailing bits.
- Key files say what they hold: a first line naming the kind and the key id, then the key
  in base64, e.g. (``operator.key`` and ``operator.key.pub``)::

      hotline x25519 private key x25519:7c6d07e3...c025
      AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=

      hotline x25519 public key x25519:7c6d07e3...c025
      j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=

  The private key file is created 0600 with ``O_CREAT | O_EXCL`` (never world-readable, not
  even for a moment, and never overwritten); the public key sits beside it in ``<name>.pub``.
  Loading checks the kind before anything else, so each misuse has its own error: a public
  key where a private one is needed, a private key where a public one is needed (it is never
  sent anywhere), a private key file readable by group or others (refused, as OpenSSH
  does), a file that is not a key file, a key that does not match the id on its first line.
  Files of the earlier format (one bare base64 line) are refused with a message saying so:
  that format could not tell a private key from a public one, which is the misuse the
  header exists to stop, and guessing by file name or mode would bring it back.
- The platform's Ed25519 signing key (checkpoints, digests) is a 32-byte seed kept as 64 hex
  digits, the same text as ``HOTLINE_SIGNING_KEY``, so one can be copied into the other.

Every failure raises a subclass of :class:`CryptoError`; messages never contain key material.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

__all__ = [
    "KEY_BYTES",
    "KEY_ID_PREFIX",
    "CryptoError",
    "KeyFileError",
    "KeyFormatError",
    "WrongKeyKindError",
    "b64decode_strict",
    "b64encode",
    "check_key_id",
    "check_public_key",
    "generate_keypair",
    "key_id",
    "load_or_create_signing_key",
    "load_private_key",
    "load_public_key",
    "public_key_of",
    "public_key_path",
    "signing_key_from_hex",
    "write_keypair",
]

KEY_BYTES = 32
KEY_ID_PREFIX = "x25519:"
_KEY_ID_LABEL = b"hotline-key-id\x00"
_KEY_ID_RE = re.compile(r"x25519:[0-9a-f]{64}")
_HEX_SEED_RE = re.compile(r"[0-9a-fA-F]{64}")
# A key file is two short lines; refuse to read anything much larger.
_MAX_KEY_FILE_BYTES = 1024
PRIVATE = "private"
PUBLIC = "public"
_KEY_FILE_HEADER = "hotline x25519 {kind} key {key_id}"
_KEY_FILE_RE = re.compile(
    r"hotline x25519 (?P<kind>private|public) key (?P<key_id>\S+)\n(?P<key>[^\n]*)\n?"
)
_BARE_BASE64_RE = re.compile(r"[A-Za-z0-9+/]{43}=\n?")
# Any scalar works: X25519 yields all zeros (and libsodium fails) exactly for low-order points.
_PROBE_SCALAR = bytes([9]) * KEY_BYTES


class CryptoError(Exception):
    """Base of every error raised by hotline's cryptography (keys, envelopes, receipts)."""


class KeyFormatError(CryptoError):
    """A key, key id or encoded key is malformed (wrong length, not base64, low order...)."""


class KeyFileError(CryptoError):
    """A key file cannot be used: missing, already present, unsafe permissions, unreadable."""


class WrongKeyKindError(KeyFileError):
    """A key file holds a public key where a private one is needed, or the other way round."""


def b64encode(data: bytes) -> str:
    """Standard base64 (RFC 4648 section 4) with padding, as ASCII text."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str) -> bytes:
    """Decode standard padded base64, refusing anything but its one canonical encoding.

    Raises :class:`KeyFormatError` on a non-str, characters outside the alphabet (whitespace
    included), wrong padding, or non-zero trailing bits (two texts never decode to one value).
    """
    if not isinstance(text, str):
        raise KeyFormatError("base64 value must be a string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise KeyFormatError("value is not valid base64") from exc
    if b64encode(data) != text:
        raise KeyFormatError("value is not canonical base64")
    return data


def check_public_key(public_key: bytes) -> bytes:
    """Return ``public_key`` if it is a usable X25519 public key, else raise KeyFormatError.

    Requires 32 bytes that are not a low-order point (such a key would make every sealed box
    to it readable by anyone, since the shared secret is known).
    """
    if not isinstance(public_key, bytes) or len(public_key) != KEY_BYTES:
        raise KeyFormatError(f"an X25519 public key is {KEY_BYTES} bytes")
    try:
        nacl.bindings.crypto_scalarmult(_PROBE_SCALAR, public_key)
    except nacl.exceptions.CryptoError as exc:
        raise KeyFormatError("X25519 public key is a low-order point") from exc
    return public_key


def _check_private_key(private_key: bytes) -> bytes:
    if not isinstance(private_key, bytes) or len(private_key) != KEY_BYTES:
        raise KeyFormatError(f"an X25519 private key is {KEY_BYTES} bytes")
    return private_key


def generate_keypair() -> tuple[bytes, bytes]:
    """Return a fresh X25519 key pair as ``(private_key, public_key)``, 32 raw bytes each."""
    private = nacl.public.PrivateKey.generate()
    return bytes(private), bytes(private.public_key)


def public_key_of(private_key: bytes) -> bytes:
    """Return the X25519 public key (32 bytes) of a 32-byte private key."""
    return bytes(nacl.public.PrivateKey(_check_private_key(private_key)).public_key)


def key_id(public_key: bytes) -> str:
    """Return the key id of an X25519 public key (see the module docstring for the format).

    Requires a valid public key (:func:`check_public_key`); raises KeyFormatError otherwise.
    """
    if not isinstance(public_key, bytes):  # checked before the cache, which hashes its key
        raise KeyFormatError(f"an X25519 public key is {KEY_BYTES} bytes")
    return _key_id(public_key)


@functools.lru_cache(maxsize=4096)
def _key_id(public_key: bytes) -> str:
    # Remembered per key (a refusal is not: it raises again): every seal and every check of a
    # report derives the ids of the same few registered keys, and the low-order check is a
    # scalar multiplication, a third of what sealing to one more recipient costs.
    digest = hashlib.sha256(_KEY_ID_LABEL + check_public_key(public_key)).hexdigest()
    return KEY_ID_PREFIX + digest


def check_key_id(text: object) -> str:
    """Return ``text`` if it has the key id format (lower-case hex), else raise KeyFormatError.

    Only the form is checked; whether it belongs to a given key is :func:`key_id`'s business.
    """
    if not isinstance(text, str) or _KEY_ID_RE.fullmatch(text) is None:
        raise KeyFormatError("key id must be 'x25519:' followed by 64 lower-case hex digits")
    return text


def public_key_path(private_key_path: Path) -> Path:
    """Return where the public key of ``private_key_path`` lives: the same name plus ``.pub``."""
    return private_key_path.with_name(private_key_path.name + ".pub")


def _create_exclusive(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with ``mode`` from the first instant, write ``text``, fsync.

    Raises FileExistsError if the path exists (symlinks included: O_EXCL never follows one).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_keypair(path: Path) -> str:
    """Generate an X25519 key pair, write it to ``path`` and ``path.pub``; return its key id.

    The private key file is created 0600 with O_EXCL; the public key file 0644. Refuses
    (KeyFileError) if either file already exists, and leaves nothing behind on failure.
    """
    private_key, public_key = generate_keypair()
    pub_path = public_key_path(path)
    if pub_path.exists() or pub_path.is_symlink():
        raise KeyFileError(f"refusing to overwrite {pub_path}")
    kid = key_id(public_key)
    try:
        _create_exclusive(path, _key_file_text(PRIVATE, kid, private_key), 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"refusing to overwrite {path}") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        _create_exclusive(pub_path, _key_file_text(PUBLIC, kid, public_key), 0o644)
    except OSError as exc:
        path.unlink()  # ours: created just above with O_EXCL
        if isinstance(exc, FileExistsError):
            raise KeyFileError(f"refusing to overwrite {pub_path}") from exc
        raise KeyFileError(f"cannot create {pub_path}: {exc.strerror}") from exc
    return kid


def _key_file_text(kind: str, kid: str, key: bytes) -> str:
    return _KEY_FILE_HEADER.format(kind=kind, key_id=kid) + "\n" + b64encode(key) + "\n"


def _read_key_file(path: Path) -> tuple[str, int]:
    """The text of a small regular file and its permission bits; KeyFileError otherwise."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang us; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        raw = b""
        while len(raw) <= _MAX_KEY_FILE_BYTES:
            chunk = os.read(fd, _MAX_KEY_FILE_BYTES + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    finally:
        os.close(fd)
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is too large to be a key file")
    try:
        return raw.decode("ascii"), stat.S_IMODE(info.st_mode)
    except UnicodeDecodeError as exc:
        raise KeyFormatError(f"{path} is not a hotline key file (not ASCII text)") from exc


def _parse_key_file(path: Path, text: str, wanted: str) -> tuple[str, str, bytes]:
    """The kind, written key id and raw key of a key file's text; an error naming the misuse."""
    found = _KEY_FILE_RE.fullmatch(text)
    if found is None:
        if _BARE_BASE64_RE.fullmatch(text):
            raise KeyFormatError(
                f"{path} holds a bare base64 key, the format from before key files said what "
                "they hold; it cannot tell a private key from a public one, so it is no "
                "longer read: create a new pair with `hotline keys generate`"
            )
        raise KeyFormatError(
            f"{path} is not a hotline key file: its first line should be "
            f"'hotline x25519 {wanted} key x25519:...' (from `hotline keys generate`)"
        )
    try:
        key = b64decode_strict(found["key"])
    except KeyFormatError as exc:
        raise KeyFormatError(f"{path}: the key on its second line is not valid: {exc}") from exc
    if len(key) != KEY_BYTES:
        raise KeyFormatError(f"{path}: an X25519 key is {KEY_BYTES} bytes")
    return found["kind"], found["key_id"], key


def _check_file_key_id(path: Path, written: str, public_key: bytes) -> None:
    if written != key_id(public_key):
        raise KeyFormatError(f"{path} is damaged: its key does not match the key id it names")


def load_private_key(path: Path) -> bytes:
    """Read an X25519 private key file written by :func:`write_keypair`; return its 32 bytes.

    Raises WrongKeyKindError (a public key file), KeyFileError (missing, not a regular file,
    group/other permission bits set) or KeyFormatError (not a key file, the old bare-base64
    format, a key that does not match its key id).
    """
    text, mode = _read_key_file(path)
    kind, written_id, key = _parse_key_file(path, text, PRIVATE)
    if kind == PUBLIC:
        private_name = path.name.removesuffix(".pub")
        hint = f" (probably {private_name})" if private_name != path.name else ""
        raise WrongKeyKindError(f"{path} is a public key; this needs your private key file{hint}")
    if mode & 0o077:
        raise KeyFileError(
            f"private key file {path} is accessible by group or others; chmod 600 {path}"
        )
    _check_file_key_id(path, written_id, public_key_of(key))
    return key


def load_public_key(source: Path | str) -> bytes:
    """Return a 32-byte X25519 public key from a ``.pub`` file (a Path) or base64 text (a str).

    A ``str`` is always taken as the key itself, never as a file name (no guessing); pass a
    Path to read a file. Surrounding whitespace of the text is ignored. Raises
    WrongKeyKindError (the file holds a PRIVATE key: it is refused before anything could send
    it anywhere), KeyFileError or KeyFormatError (not a key file, not canonical base64, not 32
    bytes, low-order point, a key that does not match its key id).
    """
    if isinstance(source, Path):
        text, _ = _read_key_file(source)
        kind, written_id, key = _parse_key_file(source, text, PUBLIC)
        if kind == PRIVATE:
            raise WrongKeyKindError(
                f"{source} is a PRIVATE key: keep it secret and never send it; "
                f"give its public key instead ({public_key_path(source).name})"
            )
        try:
            check_public_key(key)
        except KeyFormatError as exc:
            raise KeyFormatError(f"{source}: {exc}") from exc
        _check_file_key_id(source, written_id, key)
        return key
    if isinstance(source, str):
        return check_public_key(b64decode_strict(source.strip()))
    raise KeyFormatError("public key source must be a Path or base64 text")


def signing_key_from_hex(seed_hex: str) -> nacl.signing.SigningKey:
    """Return the Ed25519 signing key of a 32-byte seed written as exactly 64 hex digits."""
    if not isinstance(seed_hex, str) or _HEX_SEED_RE.fullmatch(seed_hex) is None:
        raise KeyFormatError("an Ed25519 seed is 64 hex digits (32 bytes)")
    return nacl.signing.SigningKey(bytes.fromhex(seed_hex))


def configured_signing_key(seed_hex: str, dev_path: Path) -> nacl.signing.SigningKey:
    """The Ed25519 key a service signs with: the configured seed (production), else the
    development key kept at ``dev_path`` (created once, 0600, in a 0700 folder)."""
    if seed_hex:
        return signing_key_from_hex(seed_hex)
    dev_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return load_or_create_signing_key(dev_path)


def load_or_create_signing_key(path: Path) -> nacl.signing.SigningKey:
    """Return the Ed25519 signing key stored at ``path``, creating it (0600) if absent.

    The file holds the seed as 64 hex digits and a newline. Creation is atomic and safe
    against concurrent starters: the seed is written to a private temporary file which is then
    hard-linked into place, so a reader sees a complete key or none, and when two processes
    race, both end up with the one that was linked first. Loading applies the same checks as
    :func:`load_private_key` (regular file, no group/other access).
    """
    if not (path.exists() or path.is_symlink()):
        seed_hex = secrets.token_bytes(KEY_BYTES).hex()
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            _create_exclusive(tmp, seed_hex + "\n", 0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race: use its key, read below
        except OSError as exc:
            raise KeyFileError(f"cannot create signing key {path}: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)
    text, mode = _read_key_file(path)
    if mode & 0o077:
        raise KeyFileError(
            f"signing key file {path} is accessible by group or others; chmod 600 {path}"
        )
    return signing_key_from_hex(text.removesuffix("\n"))

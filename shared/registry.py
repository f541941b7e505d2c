"""The registry of factories, buyers, buyer-factory links and recipient public keys.

Written by the platform admin (through the triage service's admin API), read by intake (to
check that a report is sealed to exactly the expected keys) and by notify (to route digests).
Every change is one document write carrying its events in the outbox: a key registration is
a `key.registered` event, so the audit log knows every key that may ever be a recipient.

A buyer holds one current key (`key_id`, `public_key`: the only one intake seals to). A
rotation registers the new key and revokes the current one in ONE guarded write of the
buyer's document (`key.registered` and `key.revoked` in its outbox); the revoked key ids stay
on the document (`revoked_key_ids`, oldest first), so the buyer's old reports are still
known to be its own, and a revoked key is never registered again, for anyone. A buyer's
digest `schedule` (daily by default, or weekly) is set by the platform admin; notify reads it.

Refusals are typed domain errors (subclasses of `RegistryError`) whose messages are written
for the caller; they carry no HTTP status: each service's router maps them.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from .aio import Batched
from .events import Event, KeyRegistered, KeyRevoked, RegistryChanged, new_event
from .keys import CryptoError, key_id, load_public_key
from .outbox import outbox_of
from .store import Document, Store

FACTORY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
BUYER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_NAME = 200
OPERATOR_ORG = "hotline-operator"
SCHEDULES = ("daily", "weekly")  # how often a buyer's digest is issued (notify's scheduler)
DEFAULT_SCHEDULE = "daily"
# Guarded writes of a buyer that lose a race re-read and decide again, this many times.
MAX_ATTEMPTS = 5
# One document counting the registry's writes (`RegistryReader` reads the registry again
# when it moves), and how long a reader trusts what it read if the count does not move.
REGISTRY_VERSION = "registry_version"
TRUSTED_SECONDS = 60.0


class RegistryError(Exception):
    """A registry operation refused; the subclass says why, the message says what."""


class InvalidInput(RegistryError, ValueError):
    """A value is malformed: a code, id, name, country or public key."""


class UnknownFactory(RegistryError):
    """No factory has this code."""


class UnknownBuyer(RegistryError):
    """No buyer has this id."""


class AlreadyExists(RegistryError):
    """The factory, buyer, key or link is registered already (nothing was changed)."""


class NoOperatorKey(RegistryError):
    """No operator key is registered yet, so no report could be read by anyone."""


class ChangedMeanwhile(RegistryError):
    """Others kept changing the document while this change was decided (nothing was changed)."""


@dataclass(frozen=True)
class Recipients:
    """Who a report at one factory must be sealed to: key id -> raw public key."""

    content: dict[str, bytes]
    identity: dict[str, bytes]


def decode_public_key(text: str) -> bytes:
    """The raw X25519 key of a base64 public key, checked as keys.py checks every key."""
    try:
        return load_public_key(text.strip())
    except CryptoError as exc:
        raise InvalidInput(f"public key: {exc}") from None


def check_factory(code: str, name: str, country: str, city: str = "") -> None:
    """Raise InvalidInput unless these are a factory code, a name, an ISO country code and an
    (optional, possibly empty) city."""
    _check(FACTORY_CODE, code, "factory code")
    _check(COUNTRY, country, "country (ISO 3166 alpha-2)")
    _check_name(name, "factory")
    if len(city.strip()) > MAX_NAME:
        raise InvalidInput(f"city must be at most {MAX_NAME} characters")
    _check_text(city, "city")


def check_buyer(buyer_id: str, name: str) -> None:
    """Raise InvalidInput unless these are a buyer id (its Keycloak `org`) and a name."""
    _check(BUYER_ID, buyer_id, "buyer id")
    _check_name(name, "buyer")


def check_schedule(schedule: str) -> None:
    """Raise InvalidInput unless `schedule` is one of SCHEDULES."""
    if schedule not in SCHEDULES:
        raise InvalidInput(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")


def schedule_of(buyer: Document) -> str:
    """The digest schedule of a buyer's document (buyers registered before schedules existed
    have none: theirs is the default)."""
    return str(buyer.get("schedule", DEFAULT_SCHEDULE))


def buyer_key_ids(buyer: Document) -> list[str]:
    """Every key a buyer ever held: its current key first, then the revoked ones, oldest
    first. A report sealed to any of them was sealed to this buyer."""
    return [buyer["key_id"], *buyer.get("revoked_key_ids", [])]


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.fullmatch(value):  # not match: `$` also matches before a final newline
        raise InvalidInput(f"invalid {what} {value!r}: expected {pattern.pattern}")


def _check_name(name: str, what: str) -> None:
    if not 1 <= len(name.strip()) <= MAX_NAME:
        raise InvalidInput(f"{what} name must be 1 to {MAX_NAME} characters")
    _check_text(name, f"{what} name")


# Characters no name needs, and that make a name show as something else: controls (Cc: NUL,
# BEL, newlines), surrogates (Cs: not text), private use and unassigned code points (Co,
# Cn), and the bidirectional embeddings, overrides and isolates that reorder what follows
# (U+202A-U+202E, U+2066-U+2069). Other format characters stay: ZWJ and ZWNJ spell words in
# Bengali and Hindi, and LRM/RLM mark direction in right-to-left names.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _check_text(text: str, what: str) -> None:
    for character in text:
        if unicodedata.category(character) in REFUSED_CATEGORIES or character in BIDI_CONTROLS:
            raise InvalidInput(
                f"{what} holds U+{ord(character):04X}, a control or reordering character"
            )


async def add_factory(store: Store, code: str, name: str, country: str, city: str = "") -> Document:
    check_factory(code, name, country, city)
    event = new_event(code, RegistryChanged(change="factory-added", factory=code))
    try:
        document = await outbox_of(store, "factories").insert(
            {"_id": code, "name": name.strip(), "country": country, "city": city.strip()}, event
        )
    except DuplicateKeyError:
        raise AlreadyExists(f"factory {code} already exists") from None
    await _count_write(store)
    return document


async def add_buyer(store: Store, buyer_id: str, name: str, public_key_b64: str) -> Document:
    check_buyer(buyer_id, name)
    public_key = decode_public_key(public_key_b64)
    kid = key_id(public_key)
    await _check_never_registered(store, kid)
    events = (
        new_event(buyer_id, RegistryChanged(change="buyer-added", buyer=buyer_id)),
        new_event(
            kid,
            KeyRegistered(
                key_id=kid, public_key=public_key_b64.strip(), org=buyer_id, org_kind="buyer"
            ),
        ),
    )
    try:
        document = await outbox_of(store, "buyers").insert(
            {
                "_id": buyer_id,
                "name": name.strip(),
                "key_id": kid,
                "public_key": public_key_b64.strip(),
                "revoked_key_ids": [],
                "schedule": DEFAULT_SCHEDULE,
            },
            *events,
        )
    except DuplicateKeyError:
        raise AlreadyExists(f"buyer {buyer_id} or its key already exists") from None
    await _count_write(store)
    return document


async def rotate_buyer_key(store: Store, buyer_id: str, public_key_b64: str) -> Document:
    """Make `public_key_b64` the buyer's current key and revoke the one it replaces, in one
    write (`key.registered` of the new key, then `key.revoked` of the old); return the
    document as stored. Raises UnknownBuyer, InvalidInput (not a key), AlreadyExists (the
    key is, or was, registered for anyone: a key is registered once, and a revoked key never
    comes back) or ChangedMeanwhile; nothing is changed then."""
    public_key = decode_public_key(public_key_b64)
    kid = key_id(public_key)
    for _ in range(MAX_ATTEMPTS):
        buyer = await _buyer(store, buyer_id)
        await _check_never_registered(store, kid)
        old = buyer["key_id"]
        change = {
            "$set": {
                "key_id": kid,
                "public_key": public_key_b64.strip(),
                "revoked_key_ids": [*buyer.get("revoked_key_ids", []), old],
            }
        }
        registered = KeyRegistered(
            key_id=kid, public_key=public_key_b64.strip(), org=buyer_id, org_kind="buyer"
        )
        revoked = KeyRevoked(key_id=old, org=buyer_id, org_kind="buyer")
        try:
            written = await _update_buyer(
                store, buyer, change, new_event(kid, registered), new_event(old, revoked)
            )
        except DuplicateKeyError:  # another buyer took the key since the check (unique key_id)
            raise AlreadyExists(f"key {kid} is already registered") from None
        if written:
            await _count_write(store)
            return await _buyer(store, buyer_id)
    raise _changed_meanwhile(buyer_id)


async def set_schedule(store: Store, buyer_id: str, schedule: str) -> Document:
    """Set how often the buyer's digest is issued; return the document as stored (setting
    the schedule it has is a no-op). No event: the audit log records what was sent and to
    which key, not how often the buyer asked for it."""
    check_schedule(schedule)
    for _ in range(MAX_ATTEMPTS):
        buyer = await _buyer(store, buyer_id)
        if buyer.get("schedule") == schedule:
            return buyer
        if await _update_buyer(store, buyer, {"$set": {"schedule": schedule}}):
            await _count_write(store)
            return await _buyer(store, buyer_id)
    raise _changed_meanwhile(buyer_id)


async def _buyer(store: Store, buyer_id: str) -> Document:
    buyer = await store.db.buyers.find_one({"_id": buyer_id})
    if buyer is None:
        raise UnknownBuyer(f"no buyer {buyer_id}")
    return buyer


async def _check_never_registered(store: Store, kid: str) -> None:
    """Raise AlreadyExists if `kid` is an operator key, or any buyer's current or revoked key."""
    if await store.db.operator_keys.find_one({"_id": kid}, {"_id": 1}) is not None:
        raise AlreadyExists(f"operator key {kid} is already registered")
    # revoked_key_ids is not indexed: the registry holds hundreds of buyers, not cases, and
    # this runs once per key registration.
    holder = await store.db.buyers.find_one(
        {"$or": [{"key_id": kid}, {"revoked_key_ids": kid}]}, {"key_id": 1}
    )
    if holder is not None:
        state = "current" if holder["key_id"] == kid else "revoked"
        raise AlreadyExists(
            f"key {kid} is already registered (buyer {holder['_id']}'s {state} key): a key "
            "is registered once, and a revoked key never again"
        )


async def _update_buyer(
    store: Store, buyer: Document, change: Mapping[str, Mapping[str, Any]], *events: Event
) -> bool:
    """One write of `buyer` guarded by the version it was read at; False if another writer
    got there first (the caller re-reads and decides again)."""
    return await outbox_of(store, "buyers").update(buyer["_id"], buyer["version"], change, *events)


def _changed_meanwhile(buyer_id: str) -> ChangedMeanwhile:
    return ChangedMeanwhile(
        f"buyer {buyer_id} kept changing while this change was decided; nothing was changed, "
        "try again"
    )


async def link(store: Store, buyer_id: str, factory: str) -> Document:
    if await store.db.buyers.find_one({"_id": buyer_id}) is None:
        raise UnknownBuyer(f"no buyer {buyer_id}")
    if await store.db.factories.find_one({"_id": factory}) is None:
        raise UnknownFactory(f"no factory {factory}")
    event = new_event(
        factory,
        RegistryChanged(change="link-added", factory=factory, buyer=buyer_id),
    )
    try:
        document = await outbox_of(store, "links").insert(
            {"_id": f"{buyer_id}|{factory}", "buyer": buyer_id, "factory": factory}, event
        )
    except DuplicateKeyError:
        raise AlreadyExists(f"{buyer_id} is already linked to {factory}") from None
    await _count_write(store)
    return document


async def add_operator_key(store: Store, public_key_b64: str) -> Document:
    public_key = decode_public_key(public_key_b64)
    kid = key_id(public_key)
    await _check_never_registered(store, kid)
    event = new_event(
        kid,
        KeyRegistered(
            key_id=kid, public_key=public_key_b64.strip(), org=OPERATOR_ORG, org_kind="operator"
        ),
    )
    try:
        document = await outbox_of(store, "operator_keys").insert(
            {"_id": kid, "public_key": public_key_b64.strip()}, event
        )
    except DuplicateKeyError:
        raise AlreadyExists(f"operator key {kid} is already registered") from None
    await _count_write(store)
    return document


async def buyers_of(store: Store, factory: str) -> list[Document]:
    """The buyers linked to `factory`, each with its key."""
    buyer_ids = [doc["buyer"] async for doc in store.db.links.find({"factory": factory})]
    if not buyer_ids:
        return []
    return [doc async for doc in store.db.buyers.find({"_id": {"$in": buyer_ids}})]


async def recipients_for(store: Store, factory: str) -> Recipients:
    """Content goes to the operator keys and the factory's buyers; identity to operators only."""
    if await store.db.factories.find_one({"_id": factory}) is None:
        raise UnknownFactory(f"unknown factory {factory}")
    operators = {
        doc["_id"]: decode_public_key(doc["public_key"])
        async for doc in store.db.operator_keys.find({})
    }
    if not operators:
        raise NoOperatorKey("no operator key is registered yet")
    buyers = {
        doc["key_id"]: decode_public_key(doc["public_key"])
        for doc in await buyers_of(store, factory)
    }
    return Recipients(content={**operators, **buyers}, identity=dict(operators))


async def _count_write(store: Store) -> None:
    """Count a registry write, once it is stored: readers that kept the registry read it
    again (`RegistryReader`)."""
    await store.db[REGISTRY_VERSION].update_one(
        {"_id": REGISTRY_VERSION}, {"$inc": {"writes": 1}}, upsert=True
    )


class RegistryReader:
    """`recipients_for`, kept per factory until the registry's write count moves: one read
    per report instead of four (factory, operator keys, links, buyers). Every registry write
    counts itself once stored, so the next report after it sees it; were a writer to die
    between its write and its count, what was kept is read again after TRUSTED_SECONDS.
    Refusals (an unknown factory, no operator key yet) are never kept."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._writes: int | None = None
        self._read_at = 0.0
        self._kept: dict[str, Recipients] = {}
        # Concurrent reports share one read of the count, made after each of them arrived.
        self._write_count: Batched[None, int] = Batched(self._read_write_count)

    async def _read_write_count(self, callers: list[None]) -> list[int]:
        found = await self.store.db[REGISTRY_VERSION].find_one({"_id": REGISTRY_VERSION})
        return [int(found["writes"]) if found else 0] * len(callers)

    async def recipients_for(self, factory: str) -> Recipients:
        writes = await self._write_count(None)
        now = time.monotonic()
        if writes != self._writes or now - self._read_at > TRUSTED_SECONDS:
            self._writes, self._read_at, self._kept = writes, now, {}
        kept = self._kept.get(factory)
        if kept is not None:
            return kept
        recipients = await recipients_for(self.store, factory)
        if self._writes == writes:  # not if a newer count was seen meanwhile
            self._kept[factory] = recipients
        return recipients


MAX_FACTORY_MATCHES = 20


async def search_factories(store: Store, query: str) -> list[dict[str, str]]:
    """Factories whose code, name or city contains `query` (case-insensitive), at most
    MAX_FACTORY_MATCHES, by code. A worker who does not know the code searches by name and
    city. It reads every factory (names are not indexed for substrings on nx-27017): the
    registry holds the hotline's factories, thousands at most, never cases."""
    needle = query.strip().casefold()
    if not needle:
        return []
    matches: list[dict[str, str]] = []
    found = store.db.factories.find({}, {"name": 1, "city": 1, "country": 1}).sort("_id", 1)
    async for doc in found:
        city = doc.get("city", "")
        if any(needle in text.casefold() for text in (doc["_id"], doc["name"], city)):
            matches.append(
                {"code": doc["_id"], "name": doc["name"], "city": city, "country": doc["country"]}
            )
            if len(matches) == MAX_FACTORY_MATCHES:
                break
    return matches

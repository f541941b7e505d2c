"""The registry of factories, buyers, buyer-factory links and recipient public keys.

Written by the platform admin (through the triage service's admin API), read by intake (to
check that a report is sealed to exactly the expected keys) and by notify (to route digests).
Every change is one document write carrying its events in the outbox: a key registration is
a `key.registered` event, so the audit log knows every key that may ever be a recipient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymongo.errors import DuplicateKeyError

from .events import KeyRegistered, RegistryChanged, new_event
from .keys import CryptoError, key_id, load_public_key
from .store import Document, Store, with_outbox

FACTORY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
BUYER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
OPERATOR_ORG = "hotline-operator"


class RegistryError(ValueError):
    """Bad input for the registry; `status` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


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
        raise RegistryError(f"public key: {exc}") from None


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.match(value):
        raise RegistryError(f"invalid {what} {value!r}: expected {pattern.pattern}")


async def add_factory(store: Store, code: str, name: str, country: str) -> Document:
    _check(FACTORY_CODE, code, "factory code")
    _check(COUNTRY, country, "country (ISO 3166 alpha-2)")
    if not 1 <= len(name.strip()) <= 200:
        raise RegistryError("factory name must be 1 to 200 characters")
    event = new_event(code, RegistryChanged(change="factory-added", factory=code))
    document = with_outbox({"_id": code, "name": name.strip(), "country": country}, event)
    try:
        await store.db.factories.insert_one(document)
    except DuplicateKeyError:
        raise RegistryError(f"factory {code} already exists", status=409) from None
    return document


async def add_buyer(store: Store, buyer_id: str, name: str, public_key_b64: str) -> Document:
    _check(BUYER_ID, buyer_id, "buyer id")
    if not 1 <= len(name.strip()) <= 200:
        raise RegistryError("buyer name must be 1 to 200 characters")
    public_key = decode_public_key(public_key_b64)
    kid = key_id(public_key)
    events = (
        new_event(buyer_id, RegistryChanged(change="buyer-added", buyer=buyer_id)),
        new_event(
            kid,
            KeyRegistered(
                key_id=kid, public_key=public_key_b64.strip(), org=buyer_id, org_kind="buyer"
            ),
        ),
    )
    document = with_outbox(
        {
            "_id": buyer_id,
            "name": name.strip(),
            "key_id": kid,
            "public_key": public_key_b64.strip(),
        },
        *events,
    )
    try:
        await store.db.buyers.insert_one(document)
    except DuplicateKeyError:
        raise RegistryError(f"buyer {buyer_id} or its key already exists", status=409) from None
    return document


async def link(store: Store, buyer_id: str, factory: str) -> Document:
    if await store.db.buyers.find_one({"_id": buyer_id}) is None:
        raise RegistryError(f"no buyer {buyer_id}", status=404)
    if await store.db.factories.find_one({"_id": factory}) is None:
        raise RegistryError(f"no factory {factory}", status=404)
    event = new_event(
        factory,
        RegistryChanged(change="link-added", factory=factory, buyer=buyer_id),
    )
    document = with_outbox(
        {"_id": f"{buyer_id}|{factory}", "buyer": buyer_id, "factory": factory}, event
    )
    try:
        await store.db.links.insert_one(document)
    except DuplicateKeyError:
        raise RegistryError(f"{buyer_id} is already linked to {factory}", status=409) from None
    return document


async def add_operator_key(store: Store, public_key_b64: str) -> Document:
    public_key = decode_public_key(public_key_b64)
    kid = key_id(public_key)
    event = new_event(
        kid,
        KeyRegistered(
            key_id=kid, public_key=public_key_b64.strip(), org=OPERATOR_ORG, org_kind="operator"
        ),
    )
    document = with_outbox({"_id": kid, "public_key": public_key_b64.strip()}, event)
    try:
        await store.db.operator_keys.insert_one(document)
    except DuplicateKeyError:
        raise RegistryError(f"operator key {kid} is already registered", status=409) from None
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
        raise RegistryError(f"unknown factory {factory}", status=404)
    operators = {
        doc["_id"]: decode_public_key(doc["public_key"])
        async for doc in store.db.operator_keys.find({})
    }
    if not operators:
        raise RegistryError("no operator key is registered yet", status=409)
    buyers = {
        doc["key_id"]: decode_public_key(doc["public_key"])
        for doc in await buyers_of(store, factory)
    }
    return Recipients(content={**operators, **buyers}, identity=dict(operators))

"""The platform admin's registry API (role platform-admin), one router per resource.

Refusals are the registry's typed errors; `ERROR_STATUS` is how triage answers them, and
create_app registers it once. Each answer is the `XPublic` model of what is now stored.

A buyer's key is rotated with `POST /api/admin/buyers/{id}/keys` (the new key becomes the
current one and the old is revoked, in one write) and its digest schedule set with
`PUT /api/admin/buyers/{id}/schedule`, beside the other buyer routes.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict

from hotline.shared import registry
from hotline.shared.deps import AdminDep, RuntimeDep
from hotline.shared.store import Document

factories = APIRouter(prefix="/api/admin/factories", tags=["factories"])
buyers = APIRouter(prefix="/api/admin/buyers", tags=["buyers"])
links = APIRouter(prefix="/api/admin/links", tags=["links"])
operator_keys = APIRouter(prefix="/api/admin/operator-keys", tags=["operator-keys"])
ROUTERS = (factories, buyers, links, operator_keys)

ERROR_STATUS: dict[type[Exception], int] = {
    registry.InvalidInput: status.HTTP_422_UNPROCESSABLE_CONTENT,
    registry.UnknownFactory: status.HTTP_404_NOT_FOUND,
    registry.UnknownBuyer: status.HTTP_404_NOT_FOUND,
    registry.AlreadyExists: status.HTTP_409_CONFLICT,
    registry.ChangedMeanwhile: status.HTTP_409_CONFLICT,
}


class _Create(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactoryCreate(_Create):
    code: str
    name: str
    country: str
    city: str = ""


class FactoryPublic(BaseModel):
    code: str
    name: str
    country: str
    city: str

    @classmethod
    def of(cls, doc: Document) -> FactoryPublic:
        return cls(
            code=doc["_id"], name=doc["name"], country=doc["country"], city=doc.get("city", "")
        )


class BuyerCreate(_Create):
    buyer_id: str
    name: str
    public_key: str  # base64 X25519


class BuyerPublic(BaseModel):
    buyer_id: str
    name: str
    key_id: str

    @classmethod
    def of(cls, doc: Document) -> BuyerPublic:
        return cls(buyer_id=doc["_id"], name=doc["name"], key_id=doc["key_id"])


class BuyerKeyCreate(_Create):
    public_key: str  # base64 X25519: the buyer's new key


class BuyerKeysPublic(BaseModel):
    buyer_id: str
    key_id: str  # the current key: the only one reports are sealed to from now on
    revoked_key_ids: list[str]  # oldest first

    @classmethod
    def of(cls, doc: Document) -> BuyerKeysPublic:
        return cls(
            buyer_id=doc["_id"],
            key_id=doc["key_id"],
            revoked_key_ids=doc.get("revoked_key_ids", []),
        )


class ScheduleUpdate(_Create):
    schedule: str  # one of registry.SCHEDULES (checked there, like every registry value)


class BuyerSchedulePublic(BaseModel):
    buyer_id: str
    schedule: str

    @classmethod
    def of(cls, doc: Document) -> BuyerSchedulePublic:
        return cls(buyer_id=doc["_id"], schedule=registry.schedule_of(doc))


class LinkCreate(_Create):
    buyer_id: str
    factory: str


class LinkPublic(BaseModel):
    buyer_id: str
    factory: str

    @classmethod
    def of(cls, doc: Document) -> LinkPublic:
        return cls(buyer_id=doc["buyer"], factory=doc["factory"])


class OperatorKeyCreate(_Create):
    public_key: str  # base64 X25519


class OperatorKeyPublic(BaseModel):
    key_id: str

    @classmethod
    def of(cls, doc: Document) -> OperatorKeyPublic:
        return cls(key_id=doc["_id"])


@factories.post("", status_code=status.HTTP_201_CREATED, response_model=FactoryPublic)
async def add_factory(body: FactoryCreate, runtime: RuntimeDep, _: AdminDep) -> FactoryPublic:
    doc = await registry.add_factory(runtime.store, body.code, body.name, body.country, body.city)
    runtime.relay.poke()
    return FactoryPublic.of(doc)


@factories.get("", response_model=list[FactoryPublic])
async def list_factories(runtime: RuntimeDep, _: AdminDep) -> list[FactoryPublic]:
    found = runtime.store.db.factories.find({}, {"name": 1, "country": 1, "city": 1}).sort("_id", 1)
    return [FactoryPublic.of(doc) async for doc in found]


@buyers.post("", status_code=status.HTTP_201_CREATED, response_model=BuyerPublic)
async def add_buyer(body: BuyerCreate, runtime: RuntimeDep, _: AdminDep) -> BuyerPublic:
    doc = await registry.add_buyer(runtime.store, body.buyer_id, body.name, body.public_key)
    runtime.relay.poke()
    return BuyerPublic.of(doc)


@buyers.post(
    "/{buyer_id}/keys", status_code=status.HTTP_201_CREATED, response_model=BuyerKeysPublic
)
async def rotate_buyer_key(
    buyer_id: str, body: BuyerKeyCreate, runtime: RuntimeDep, _: AdminDep
) -> BuyerKeysPublic:
    doc = await registry.rotate_buyer_key(runtime.store, buyer_id, body.public_key)
    runtime.relay.poke()
    return BuyerKeysPublic.of(doc)


@buyers.put("/{buyer_id}/schedule", response_model=BuyerSchedulePublic)
async def set_buyer_schedule(
    buyer_id: str, body: ScheduleUpdate, runtime: RuntimeDep, _: AdminDep
) -> BuyerSchedulePublic:
    doc = await registry.set_schedule(runtime.store, buyer_id, body.schedule)
    return BuyerSchedulePublic.of(doc)


@links.post("", status_code=status.HTTP_201_CREATED, response_model=LinkPublic)
async def add_link(body: LinkCreate, runtime: RuntimeDep, _: AdminDep) -> LinkPublic:
    doc = await registry.link(runtime.store, body.buyer_id, body.factory)
    runtime.relay.poke()
    return LinkPublic.of(doc)


@operator_keys.post("", status_code=status.HTTP_201_CREATED, response_model=OperatorKeyPublic)
async def add_operator_key(
    body: OperatorKeyCreate, runtime: RuntimeDep, _: AdminDep
) -> OperatorKeyPublic:
    doc = await registry.add_operator_key(runtime.store, body.public_key)
    runtime.relay.poke()
    return OperatorKeyPublic.of(doc)

"""The platform admin's registry API (role platform-admin)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict

from hotline.shared import registry
from hotline.shared.deps import AdminDep, RuntimeDep

admin = APIRouter(prefix="/api/admin", tags=["admin"])


class FactoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    name: str
    country: str


class BuyerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buyer_id: str
    name: str
    public_key: str


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buyer_id: str
    factory: str


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str


def _registry_call_failed(exc: registry.RegistryError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


@admin.post("/factories", status_code=status.HTTP_201_CREATED)
async def add_factory(body: FactoryCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        await registry.add_factory(runtime.store, body.code, body.name, body.country)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"code": body.code}


@admin.get("/factories")
async def list_factories(runtime: RuntimeDep, _: AdminDep) -> list[dict[str, str]]:
    found = runtime.store.db.factories.find({}, {"name": 1, "country": 1}).sort("_id", 1)
    return [{"code": d["_id"], "name": d["name"], "country": d["country"]} async for d in found]


@admin.post("/buyers", status_code=status.HTTP_201_CREATED)
async def add_buyer(body: BuyerCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        doc = await registry.add_buyer(runtime.store, body.buyer_id, body.name, body.public_key)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"buyer_id": body.buyer_id, "key_id": doc["key_id"]}


@admin.post("/links", status_code=status.HTTP_201_CREATED)
async def add_link(body: LinkCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        await registry.link(runtime.store, body.buyer_id, body.factory)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"buyer_id": body.buyer_id, "factory": body.factory}


@admin.post("/operator-keys", status_code=status.HTTP_201_CREATED)
async def add_operator_key(body: KeyCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        doc = await registry.add_operator_key(runtime.store, body.public_key)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"key_id": doc["_id"]}

"""Test session: the real engines, started once, on free ports, in a data directory of their own.

The engine distributions are shared with `hotline up` (the default data directory's engines
folder) so a machine downloads them once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.shared.config import DEFAULT_DATA_DIR, Settings
from hotline.shared.engines.process import ManagedProcess, free_port


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of this test session, also exported to the environment for child processes."""
    data = tmp_path_factory.mktemp("hotline-data")
    env = {
        "HOTLINE_DATA": str(data),
        "HOTLINE_ENGINES": os.environ.get("HOTLINE_ENGINES", str(DEFAULT_DATA_DIR / "engines")),
        "HOTLINE_KAFKA_PORT": str(free_port()),
        "HOTLINE_KAFKA_CONTROLLER_PORT": str(free_port()),
        "HOTLINE_KEYCLOAK_PORT": str(free_port()),
        "HOTLINE_MONGO_PORT": str(free_port()),
        "HOTLINE_INTAKE_PORT": str(free_port()),
        "HOTLINE_TRIAGE_PORT": str(free_port()),
        "HOTLINE_NOTIFY_PORT": str(free_port()),
        "HOTLINE_AUDIT_PORT": str(free_port()),
    }
    os.environ.update(env)
    return Settings()


@pytest.fixture(scope="session")
def kafka_engine(test_settings: Settings) -> Iterator[ManagedProcess]:
    from hotline.shared.engines import kafka

    kafka.prepare(test_settings)
    process = kafka.start(test_settings)
    try:
        kafka.create_topics(test_settings)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def mongo_engine(test_settings: Settings) -> Iterator[ManagedProcess]:
    from hotline.shared.engines import mongo

    mongo.prepare(test_settings)
    process = mongo.start(test_settings)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def keycloak_engine(test_settings: Settings) -> Iterator[ManagedProcess]:
    from hotline.shared.engines import keycloak

    keycloak.prepare(test_settings)
    process = keycloak.start(test_settings)
    try:
        yield process
    finally:
        process.stop()


def data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="session")
def system(
    test_settings: Settings,
    kafka_engine: ManagedProcess,
    mongo_engine: ManagedProcess,
    keycloak_engine: ManagedProcess,
) -> Iterator[Any]:
    """The four services running as `hotline up` runs them, over the session's engines."""
    from hotline.shared.engines.local import LocalSystem

    local = LocalSystem(test_settings)
    local.engines = {"kafka": kafka_engine, "mongo": mongo_engine, "keycloak": keycloak_engine}
    local.start_services()
    try:
        yield local
    finally:
        for process in local.services.values():
            process.stop()

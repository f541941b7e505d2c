"""Test session: the real engines, started once, on free ports, in a data directory of their own.

The engine distributions are the machine's (Settings.engines_dir: DEFAULT_ENGINES_DIR unless
HOTLINE_ENGINES says otherwise), shared with `hotline up`, so a machine downloads them once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from hotline.cli.engines.process import ManagedProcess, free_port
from hotline.shared.config import Settings
from tests.support.containers import container_engines, containers_requested
from tests.support.webhook_receiver import WEBHOOK_SCHEDULE, session_ca

# The engines' JVMs without the optimising (C2) compiler: a Keycloak start takes 35 s of CPU
# instead of 55, a Kafka start 4.3 instead of 7.2, and a login no more; the suite starts
# about ten of each (docs/decisions.md "Two test sessions"). Set here, not in a fixture, so
# that every engine a test or a `hotline` it runs starts has it.
os.environ.setdefault("HOTLINE_ENGINE_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")


@pytest.fixture(scope="session")
def test_settings(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    """Settings of this test session, also exported to the environment for child processes."""
    data = tmp_path_factory.mktemp("hotline-data")
    env = {
        "HOTLINE_DATA": str(data),
        "HOTLINE_KAFKA_PORT": str(free_port()),
        "HOTLINE_KAFKA_CONTROLLER_PORT": str(free_port()),
        "HOTLINE_KEYCLOAK_PORT": str(free_port()),
        "HOTLINE_MONGO_PORT": str(free_port()),
        "HOTLINE_INTAKE_PORT": str(free_port()),
        "HOTLINE_TRIAGE_PORT": str(free_port()),
        "HOTLINE_NOTIFY_PORT": str(free_port()),
        "HOTLINE_AUDIT_PORT": str(free_port()),
        # Notify trusts the test receivers' CA and gives up on a delivery within seconds.
        "HOTLINE_WEBHOOK_CA_FILE": str(session_ca(data).cert_file),
        **WEBHOOK_SCHEDULE,
        # One machine, one clock: a token is refused 2 s after its exp instead of 30, so the
        # authorisation matrix's expired token is expired moments after it is minted.
        "HOTLINE_TOKEN_LEEWAY": "2",
        # Proofs of work at 8 bits, not 16: every check is the same at any difficulty (the
        # tests read it from the challenge), and the suite solves hundreds of them, in Python
        # and in the pages; what 16 bits costs a phone is `hotline bench browser`'s.
        "HOTLINE_POW_DIFFICULTY": os.environ.get("HOTLINE_POW_DIFFICULTY", "8"),
    }
    os.environ.update(env)
    if containers_requested():
        os.environ.update(request.getfixturevalue("container_urls"))
    return Settings()


@pytest.fixture(scope="session")
def container_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """HOTLINE_TEST_ENGINES=containers: the engines in Docker (skips if there is no Docker)."""
    with container_engines(tmp_path_factory.mktemp("containers")) as urls:
        yield urls


@pytest.fixture(scope="session")
def local_system(test_settings: Settings) -> Iterator[Any]:
    """The three engines, started once per session; whatever runs at the end is stopped
    (a test may restart an engine: the system object holds the current processes)."""
    from hotline.cli.engines import kafka
    from hotline.cli.engines.local import LocalSystem

    if containers_requested():  # engines run in containers, started with test_settings
        system = LocalSystem(test_settings)
        kafka.create_topics(system.settings)
        try:
            yield system
        finally:
            system.stop()
        return
    system = LocalSystem(test_settings)
    system.prepare()
    system.start_engines()
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture
def local_engines_only() -> None:
    """For tests of the local engines themselves (restarts, files on disk)."""
    if containers_requested():
        pytest.skip("tests the local engines; HOTLINE_TEST_ENGINES=containers is set")


@pytest.fixture(scope="session")
def kafka_engine(local_system: Any) -> ManagedProcess | None:
    """The local Kafka process (None when the engines run in containers)."""
    process: ManagedProcess | None = local_system.engines.get("kafka")
    return process


@pytest.fixture(scope="session")
def mongo_engine(local_system: Any) -> ManagedProcess | None:
    process: ManagedProcess | None = local_system.engines.get("mongo")
    return process


@pytest.fixture(scope="session")
def keycloak_engine(local_system: Any) -> ManagedProcess | None:
    process: ManagedProcess | None = local_system.engines.get("keycloak")
    return process


@pytest.fixture(scope="session")
def system(local_system: Any) -> Iterator[Any]:
    """The four services running as `hotline up` runs them, over the session's engines."""
    local_system.start_services()
    try:
        yield local_system
    finally:
        local_system.stop_services()


# Tests are organised by what they need: tests/unit (pure code, no engine: `pytest -m unit`
# runs them in seconds), tests/integration (one component against real engines) and
# tests/e2e (the whole system as a user drives it).
_LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for layer in _LAYERS:
            if f"/tests/{layer}/" in str(item.path):
                item.add_marker(layer)
    # `runs_last` (the privacy sweep) goes after everything the session does.
    last = [item for item in items if item.get_closest_marker("runs_last")]
    items[:] = [item for item in items if not item.get_closest_marker("runs_last")] + last

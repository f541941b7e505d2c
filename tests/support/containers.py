"""HOTLINE_TEST_ENGINES=containers: the same suite against Kafka, MongoDB and Keycloak in
Docker containers (testcontainers), as the compose file runs them. Without a reachable
Docker engine this mode says so and every engine-backed test is skipped, never passed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

# The images of docker-compose.yml (tests/unit/test_compose.py keeps the two in step).
KAFKA_IMAGE = "apache/kafka:4.4.0"
MONGO_IMAGE = "mongo:8.0"
KEYCLOAK_IMAGE = "quay.io/keycloak/keycloak:26.7.3"


def containers_requested() -> bool:
    return os.environ.get("HOTLINE_TEST_ENGINES", "local") == "containers"


def docker_reachable() -> str | None:
    """None if a Docker engine answers, else why not."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine to use
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def container_engines(workdir: Path) -> Iterator[dict[str, str]]:
    """Start the three engines in containers; yield the HOTLINE_* variables that reach them."""
    why_not = docker_reachable()
    if why_not is not None:
        pytest.skip(
            f"HOTLINE_TEST_ENGINES=containers needs a Docker engine; none reachable ({why_not})"
        )
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.keycloak import KeycloakContainer
    from testcontainers.community.mongodb import MongoDbContainer

    from hotline.cli.engines.keycloak import local_realm

    realm_file = workdir / "hotline-realm.json"
    realm_file.write_text(json.dumps(local_realm()))
    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer(KAFKA_IMAGE).with_kraft())
        mongo = stack.enter_context(MongoDbContainer(MONGO_IMAGE))
        keycloak = stack.enter_context(
            KeycloakContainer(KEYCLOAK_IMAGE).with_realm_import_file(str(realm_file))
        )
        keycloak_url = keycloak.get_url().rstrip("/")
        yield {
            "HOTLINE_KAFKA_BOOTSTRAP": kafka.get_bootstrap_server(),
            "HOTLINE_MONGO_URL": mongo.get_connection_url(),
            "HOTLINE_KEYCLOAK_URL": keycloak_url,
            "HOTLINE_KEYCLOAK_ISSUER": f"{keycloak_url}/realms/hotline",
        }

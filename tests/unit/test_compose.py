"""docker-compose.yml cannot run here (no Docker engine), so it is checked statically against
the code it deploys: services, modules, ports, settings, engine versions, realm, topics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hotline.cli.engines import kafka, keycloak
from hotline.cli.engines.local import SERVICES
from hotline.cli.main import cli
from hotline.shared.config import Settings
from tests.support import containers

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_the_three_engines_and_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "kafka-topics", "mongo", "keycloak", *SERVICES}


def test_each_service_runs_its_module_on_its_default_port(compose: dict[str, Any]) -> None:
    for name, (module, port_attr) in SERVICES.items():
        service = compose["services"][name]
        assert service["command"] == ["python", "-m", module]
        port = Settings.model_fields[port_attr].default  # DESIGN.md's default ports
        assert service["environment"][f"HOTLINE_{port_attr.upper()}"] == str(port)
        # One host port per replica: a range given in HOTLINE_<NAME>_PUBLISH scales it.
        publish = f"HOTLINE_{port_attr.removesuffix('_port').upper()}_PUBLISH"
        assert service["ports"] == [f"${{{publish}:-{port}}}:{port}"]
        assert "container_name" not in service, "a fixed name would stop --scale"
        assert (
            service["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"
        )


def test_every_hotline_variable_is_a_setting(compose: dict[str, Any]) -> None:
    fields = {f"HOTLINE_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("HOTLINE_"):
                assert variable in fields, f"{name}: {variable} is not a setting"


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    env = compose["services"]["intake"]["environment"]
    assert env["HOTLINE_ENVIRONMENT"] == "production"
    for secret in ("HOTLINE_CHALLENGE_KEY", "HOTLINE_SIGNING_KEY", "HOTLINE_AUDIT_VKEY"):
        assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", env[secret]), secret
    admin_password = compose["services"]["keycloak"]["environment"]["KC_BOOTSTRAP_ADMIN_PASSWORD"]
    assert admin_password.startswith("${KEYCLOAK_ADMIN_PASSWORD:?")


def test_production_settings_refuse_placeholder_secrets() -> None:
    with pytest.raises(ValueError, match="CHALLENGE_KEY"):
        Settings(_env_file=None, environment="production")  # type: ignore[call-arg]
    Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        challenge_key="cd" * 32,
        signing_key="ab" * 32,
        digest_signing_key="ef" * 32,
        audit_vkey="hotline.local/audit-log+01234567+AQ==",
    )


def test_engine_versions_match_the_local_pins(compose: dict[str, Any]) -> None:
    images = {name: compose["services"][name]["image"] for name in ("kafka", "mongo", "keycloak")}
    assert images["kafka"] == f"apache/kafka:{kafka.VERSION}" == containers.KAFKA_IMAGE
    assert (
        images["keycloak"]
        == f"quay.io/keycloak/keycloak:{keycloak.VERSION}"
        == containers.KEYCLOAK_IMAGE
    )
    assert images["mongo"] == containers.MONGO_IMAGE
    assert "--replSet" in compose["services"]["mongo"]["command"]
    env = compose["services"]["intake"]["environment"]
    assert "replicaSet=rs0" in env["HOTLINE_MONGO_URL"]


def test_keycloak_imports_the_production_realm_without_demo_users(compose: dict[str, Any]) -> None:
    service = compose["services"]["keycloak"]
    assert "--import-realm" in service["command"]
    mounts = [volume.split(":")[0] for volume in service["volumes"]]
    assert "./deploy/keycloak/hotline-realm.json" in mounts
    assert not any("local-users" in mount for mount in mounts)
    assert (REPO / "deploy/keycloak/hotline-realm.json").exists()


def test_topics_come_from_the_declared_list(compose: dict[str, Any]) -> None:
    job = compose["services"]["kafka-topics"]
    assert job["command"] == ["hotline", "topics", "create"]
    result = CliRunner().invoke(cli, ["topics", "create", "--help"])
    assert result.exit_code == 0 and "declared" in result.output
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert len(kafka.declared_topics()) >= 10


def test_the_image_copies_what_exists(compose: dict[str, Any]) -> None:
    dockerfile = REPO / compose["services"]["intake"]["build"]["dockerfile"]
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"{dockerfile.name}: {source} is missing"


# What the engines keep about time (docs/decisions.md): compose sets what the local engines set.
KAFKA_TIMING_SETTINGS = (
    "log.message.timestamp.type",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms",
    "log.cleaner.max.compaction.lag.ms",
    "offsets.retention.minutes",
)


def _server_properties() -> dict[str, str]:
    text = (REPO / "deploy/kafka/server.properties").read_text()
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def test_kafka_timing_settings_agree(compose: dict[str, Any]) -> None:
    local = _server_properties()
    env = compose["services"]["kafka"]["environment"]
    for name in KAFKA_TIMING_SETTINGS:
        assert env["KAFKA_" + name.upper().replace(".", "_")] == local[name], name
    assert local["log.message.timestamp.type"] == "CreateTime"
    # Records carry a time up to an hour old, and older when the outbox catches up.
    assert int(local["log.message.timestamp.before.max.ms"]) >= 2**63 - 1


def test_kafka_runs_the_local_log4j_configuration(compose: dict[str, Any]) -> None:
    service = compose["services"]["kafka"]
    target = service["environment"]["KAFKA_LOG4J_OPTS"].removeprefix("-Dlog4j2.configurationFile=")
    assert f"./deploy/kafka/log4j2.properties:{target}:ro" in service["volumes"]
    assert (REPO / "deploy/kafka/log4j2.properties").read_text() == kafka.LOG4J2_PROPERTIES
    assert "%d{yyyy-MM-dd HH:00}" in kafka.LOG4J2_PROPERTIES


def test_keycloak_logs_as_locally(compose: dict[str, Any]) -> None:
    command = compose["services"]["keycloak"]["command"]
    for option in keycloak.LOG_OPTIONS:
        assert option in command, option


def test_mongo_logs_no_slow_operations(compose: dict[str, Any]) -> None:
    command = compose["services"]["mongo"]["command"]
    assert command[command.index("--slowOpSampleRate") + 1] == "0"


def test_every_container_log_is_bounded(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert set(logging["options"]) == {"max-size", "max-file"}, name

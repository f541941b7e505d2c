"""The whole system on one machine: three engines and four services, as `hotline up` and the
test session run them. Engines start in parallel (Keycloak is the slow one); services start
once the engines answer; everything stops in reverse order, the services all at once.

`replicas` runs that many instances of each service: the consumers of one service share its
consumer groups (Kafka shares the partitions out), and instance k (from 0) listens on the
service's port + 10 k (intake on 8000, 8010, ...; triage on 8001, 8011, ...).

`supervise()`, called about once a second by `hotline up`, starts again whatever died, after
a back-off that doubles with each death (RESTART_FIRST .. RESTART_MAX) and starts afresh
once a child has run for STEADY_AFTER seconds; it says so on stderr.
"""

from __future__ import annotations

import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hotline.shared.config import Settings

from . import kafka, keycloak, mongo
from .process import (
    EngineError,
    ManagedProcess,
    check_ports_free,
    http_ready,
    require_java,
    say,
)

# name -> (python module, port setting)
SERVICES = {
    "intake": ("hotline.intake", "intake_port"),
    "triage": ("hotline.triage", "triage_port"),
    "notify": ("hotline.notify", "notify_port"),
    "audit-log": ("hotline.audit_log", "audit_port"),
}
SERVICE_START_TIMEOUT = 90.0
ENGINES = {"mongo": mongo.start, "kafka": kafka.start, "keycloak": keycloak.start}
MAX_REPLICAS = 8
REPLICA_PORT_STEP = 10  # instance k of a service listens on its port + 10 k: 8000..8073
RESTART_FIRST, RESTART_MAX = 1.0, 30.0  # seconds to wait before starting a dead child again
STEADY_AFTER = 60.0  # a child that has run this long starts its back-off afresh


@dataclass(frozen=True)
class ServiceInstance:
    name: str  # "triage", then "triage-2", "triage-3"...
    module: str
    port_setting: str  # the Settings field (and HOTLINE_* variable) of its port
    port: int


@dataclass
class Restarts:
    """What the supervisor knows of one child: deaths in a row, when it starts it again."""

    in_a_row: int = 0
    due: float | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass
class LocalSystem:
    settings: Settings
    replicas: int = 1
    engines: dict[str, ManagedProcess] = field(default_factory=dict)
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    restarts: dict[str, Restarts] = field(default_factory=dict)
    # Intake's proof-of-work key, one for every intake instance and restart of this system: a
    # challenge fetched from one instance is good at another (as behind a load balancer).
    challenge_key: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise EngineError(f"replicas must be 1 to {MAX_REPLICAS}, not {self.replicas}")
        self.challenge_key = self.settings.challenge_key or secrets.token_hex(32)

    def service_instances(self) -> list[ServiceInstance]:
        base = {name: getattr(self.settings, attr) for name, (_, attr) in SERVICES.items()}
        return [
            ServiceInstance(
                name if k == 0 else f"{name}-{k + 1}",
                module,
                attr,
                base[name] + REPLICA_PORT_STEP * k,
            )
            for name, (module, attr) in SERVICES.items()
            for k in range(self.replicas)
        ]

    def all_ports(self) -> dict[str, int]:
        """Every port the system listens on, by what listens; an EngineError if two of them
        would share one (ports set apart by less than the replicas' step)."""
        s = self.settings
        ports = {
            "Kafka": s.kafka_port,
            "Kafka controller": s.kafka_controller_port,
            "Keycloak": s.keycloak_port,
            "MongoDB": s.mongo_port,
            **{i.name: i.port for i in self.service_instances()},
        }
        by_port: dict[int, list[str]] = {}
        for name, port in ports.items():
            by_port.setdefault(port, []).append(name)
        shared = [
            f"{' and '.join(names)} on {port}" for port, names in by_port.items() if len(names) > 1
        ]
        if shared:
            raise EngineError(
                f"Two listeners on one port: {'; '.join(shared)}. Instance k of a service "
                f"listens on its port + {REPLICA_PORT_STEP} k: choose HOTLINE_*_PORT values "
                "further apart."
            )
        return ports

    def prepare(self) -> None:
        """Download and build what is missing (first run only), with progress."""
        say(f"Kafka and Keycloak run on {require_java()}")
        for engine in (mongo, kafka, keycloak):
            engine.prepare(self.settings)

    def start_engines(self) -> None:
        check_ports_free(self.settings.host, self.all_ports())
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {name: pool.submit(start, self.settings) for name, start in ENGINES.items()}
            errors = []
            for name, future in futures.items():
                try:
                    self.engines[name] = future.result()
                except EngineError as exc:
                    errors.append(f"{name}: {exc}")
        if errors:
            self.stop()
            raise EngineError("\n".join(errors))
        kafka.create_topics(self.settings)

    def start_services(self) -> None:
        instances = self.service_instances()
        for instance in instances:
            process = ManagedProcess(
                name=instance.name,
                command=[sys.executable, "-m", instance.module],
                log_path=self.settings.logs_dir / f"{instance.name}.log",
                env={
                    f"HOTLINE_{instance.port_setting.upper()}": str(instance.port),
                    "HOTLINE_CHALLENGE_KEY": self.challenge_key,
                },
            )
            self.services[instance.name] = process.start()
        for instance in instances:
            url = f"http://{self.settings.host}:{instance.port}/healthz"
            self.services[instance.name].wait_until(
                http_ready(url), SERVICE_START_TIMEOUT, what=url
            )
            say(f"  {instance.name:<10} healthy")

    def start(self) -> None:
        self.prepare()
        say("Starting engines (MongoDB wire, Kafka, Keycloak)...")
        self.start_engines()
        say("Starting services...")
        try:
            self.start_services()
        except EngineError:
            self.stop()
            raise

    def stop_services(self) -> None:
        """All at once: a service waiting on an engine that died must not hold up the others
        (stopped one by one, four services each waiting out their grace took minutes)."""
        processes = list(self.services.values())
        if processes:
            with ThreadPoolExecutor(max_workers=len(processes)) as pool:
                list(pool.map(ManagedProcess.stop, processes))

    def restart_engines(self, names: list[str]) -> None:
        """Stop and start engines on the same data directory (used by the restart test)."""
        for name in names:
            self.engines[name].stop()
            self.engines[name] = ENGINES[name](self.settings)

    def supervise(self) -> None:
        """Start again, after its back-off, each engine or service that is not running."""
        now = time.monotonic()
        for name, process in [*self.engines.items(), *self.services.items()]:
            state = self.restarts.setdefault(name, Restarts())
            if process.running():
                if state.in_a_row and now - state.started >= STEADY_AFTER:
                    state.in_a_row = 0
                continue
            if state.due is None:
                wait = min(RESTART_MAX, RESTART_FIRST * 2**state.in_a_row)
                state.due = now + wait
                say(
                    f"{name} stopped ({process.exit_status()}); starting it again in "
                    f"{wait:.0f} s. Its log: {process.log_path}"
                )
            elif now >= state.due:
                state.in_a_row += 1
                state.due = None
                state.started = now
                try:
                    self._start_again(name)
                except EngineError as exc:  # seen dead again next round: a longer back-off
                    say(f"{name} did not start: {exc}")
                else:
                    say(f"{name} started again (restart {state.in_a_row} in a row)")

    def _start_again(self, name: str) -> None:
        if name in self.engines:  # waits until the engine answers (Keycloak: up to minutes)
            self.restart_engines([name])  # stopping a dead process does nothing
        else:  # the same command and environment; its health shows on /healthz
            self.services[name].start()

    def stop(self) -> None:
        """Services first (they flush their outboxes), then the engines."""
        self.stop_services()
        for name in ("keycloak", "kafka", "mongo"):
            if name in self.engines:
                self.engines[name].stop()

    def stop_engine(self, name: str) -> None:
        """Stop one engine, keeping its data (an outage test; `start_engine` brings it back)."""
        self.engines[name].stop()

    def start_engine(self, name: str) -> None:
        """Start a stopped engine again on the same data directory and ports (no-op if it runs)."""
        if not self.engines[name].running():
            self.restart_engines([name])  # stopping a stopped process does nothing

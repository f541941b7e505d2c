"""The whole system on one machine: three engines and four services, as `hotline up` and the
test session run them. Engines start in parallel (Keycloak is the slow one); services start
once the engines answer; everything stops in reverse order."""

from __future__ import annotations

import sys
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


@dataclass
class LocalSystem:
    settings: Settings
    engines: dict[str, ManagedProcess] = field(default_factory=dict)
    services: dict[str, ManagedProcess] = field(default_factory=dict)

    def all_ports(self) -> dict[str, int]:
        s = self.settings
        return {
            "Kafka": s.kafka_port,
            "Kafka controller": s.kafka_controller_port,
            "Keycloak": s.keycloak_port,
            "MongoDB": s.mongo_port,
            **{name: getattr(s, attr) for name, (_, attr) in SERVICES.items()},
        }

    def prepare(self) -> None:
        """Download and build what is missing (first run only), with progress."""
        say(f"Kafka and Keycloak run on {require_java()}")
        for engine in (mongo, kafka, keycloak):
            engine.prepare(self.settings)

    def start_engines(self) -> None:
        check_ports_free(self.settings.host, self.all_ports())
        starters = {"mongo": mongo.start, "kafka": kafka.start, "keycloak": keycloak.start}
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {name: pool.submit(start, self.settings) for name, start in starters.items()}
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
        for name, (module, _) in SERVICES.items():
            process = ManagedProcess(
                name=name,
                command=[sys.executable, "-m", module],
                log_path=self.settings.logs_dir / f"{name}.log",
            )
            self.services[name] = process.start()
        for name, (_, port_attr) in SERVICES.items():
            url = f"http://{self.settings.host}:{getattr(self.settings, port_attr)}/healthz"
            self.services[name].wait_until(http_ready(url), SERVICE_START_TIMEOUT, what=url)
            say(f"  {name:<10} healthy")

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
        for process in reversed(list(self.services.values())):
            process.stop()

    def restart_engines(self, names: list[str]) -> None:
        """Stop and start engines on the same data directory (used by the restart test)."""
        starters = {"mongo": mongo.start, "kafka": kafka.start, "keycloak": keycloak.start}
        for name in names:
            self.engines[name].stop()
            self.engines[name] = starters[name](self.settings)

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

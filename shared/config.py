"""The one settings class: every URL, port and secret, read from the environment (HOTLINE_*).

Construct it where it is needed (`Settings()` in a lifespan or a CLI command), never at import
time, so tests and `hotline up` can point each process at its own engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "hotline"
# The downloaded engine distributions (Kafka's jars, Keycloak): one copy per machine, whatever
# data directory a system or a test session runs on.
DEFAULT_ENGINES_DIR = DEFAULT_DATA_DIR / "engines"


ENV_PREFIX = "HOTLINE_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    environment: Literal["development", "production"] = "development"
    data: Path = Field(default=DEFAULT_DATA_DIR, description="data directory ($HOTLINE_DATA)")
    host: str = "127.0.0.1"

    # Service ports (DESIGN.md "Default ports").
    intake_port: int = 8000
    triage_port: int = 8001
    notify_port: int = 8002
    audit_port: int = 8003

    # Engine ports, used by the local engines; the URLs below default to them.
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    keycloak_port: int = 8080
    mongo_port: int = 27017

    kafka_bootstrap: str = ""
    mongo_url: str = ""
    # The shared database; each service's own is `<mongo_db>_<service>` (shared/store.py),
    # and a database name has at most 63 bytes.
    mongo_db: str = Field(default="hotline", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,55}$")
    keycloak_url: str = ""
    keycloak_realm: str = "hotline"
    # Issuer as it appears in tokens; differs from keycloak_url behind a proxy or in compose.
    keycloak_issuer: str = ""
    # Seconds of clock skew between Keycloak and a service accepted on a token's exp, nbf, iat.
    token_leeway: float = Field(default=30.0, ge=0, le=300)

    # Where the CLI finds the services; default to the local ports.
    intake_url: str = ""
    triage_url: str = ""
    notify_url: str = ""
    audit_url: str = ""

    # Secrets. Placeholders are refused outside development.
    # HMAC key (hex, 32 bytes) signing intake's proof-of-work challenges; every intake replica
    # needs the same one. Empty = random per process (development only).
    challenge_key: str = ""
    # Proof of work: leading zero bits at a calm rate, and what counts as calm (submissions a
    # minute across the service); each doubling above it adds a bit (shared/pow.py).
    pow_difficulty: int = Field(default=16, ge=0, le=28)
    pow_calm_per_minute: int = Field(default=30, ge=1)
    # The audit log's verifier key (C2SP vkey) that the worker's page pins to check recipient
    # keys against the log. Empty = asked of the audit log at first use (development only).
    audit_vkey: str = ""
    # Ed25519 seed (hex, 32 bytes) of the platform signing key; empty = generated once and kept
    # in the data directory (development only).
    signing_key: str = ""
    audit_origin: str = "hotline.local/audit-log"
    # Witness (compliance officer) cosigner verifier keys, C2SP vkey format, comma-separated.
    audit_witnesses: str = ""
    # Seconds between integration passes / checkpoint publication of the audit log.
    audit_checkpoint_interval: float = 1.0
    # Buyers' webhooks (services/notify/deliverer.py). A PEM bundle of CAs the deliverer trusts
    # besides the system's (a local receiver with a certificate of its own); empty = none.
    webhook_ca_file: str = ""
    # Tries of one delivery before it is dead (kept, redelivered on request), and the back-off
    # between tries: full jitter, uniform in [0, min(max, base * 2^(tries - 1))] seconds. The
    # defaults wait about 16 hours in all before a delivery is dead (33 at most).
    webhook_attempts: int = Field(default=20, ge=1, le=100)
    webhook_backoff_base: float = Field(default=1.0, gt=0)
    webhook_backoff_max: float = Field(default=6 * 3600.0, gt=0)
    # Ed25519 seed (hex, 32 bytes) notify signs buyers' digests with; empty = generated once and
    # kept in the data directory (development only). Its note key name is `digest_origin`.
    digest_signing_key: str = ""
    digest_origin: str = "hotline.local/digests"

    @model_validator(mode="after")
    def _derive_urls(self) -> Settings:
        h = self.host
        self.kafka_bootstrap = self.kafka_bootstrap or f"{h}:{self.kafka_port}"
        self.mongo_url = self.mongo_url or f"mongodb://{h}:{self.mongo_port}"
        self.keycloak_url = (self.keycloak_url or f"http://{h}:{self.keycloak_port}").rstrip("/")
        self.keycloak_issuer = (
            self.keycloak_issuer or f"{self.keycloak_url}/realms/{self.keycloak_realm}"
        )
        self.intake_url = self.intake_url or f"http://{h}:{self.intake_port}"
        self.triage_url = self.triage_url or f"http://{h}:{self.triage_port}"
        self.notify_url = self.notify_url or f"http://{h}:{self.notify_port}"
        self.audit_url = self.audit_url or f"http://{h}:{self.audit_port}"
        if self.environment == "production":
            if len(bytes.fromhex(self.challenge_key or "")) != 32:
                raise ValueError("HOTLINE_CHALLENGE_KEY must be set to 64 hex digits")
            if not self.audit_vkey:
                raise ValueError("HOTLINE_AUDIT_VKEY must be set in production")
            if not self.signing_key:
                raise ValueError("HOTLINE_SIGNING_KEY must be set in production")
            if not self.digest_signing_key:
                raise ValueError("HOTLINE_DIGEST_SIGNING_KEY must be set in production")
        return self

    @property
    def jwks_url(self) -> str:
        return f"{self.keycloak_url}/realms/{self.keycloak_realm}/protocol/openid-connect/certs"

    @property
    def token_url(self) -> str:
        return f"{self.keycloak_url}/realms/{self.keycloak_realm}/protocol/openid-connect/token"

    @property
    def device_auth_url(self) -> str:
        base = f"{self.keycloak_url}/realms/{self.keycloak_realm}/protocol/openid-connect"
        return f"{base}/auth/device"

    # Downloaded engine distributions ($HOTLINE_ENGINES); default: DEFAULT_ENGINES_DIR.
    engines: Path | None = None
    # More options for the JVMs of the local engines (Kafka, its storage formatter, Keycloak),
    # split as a shell would. The test sessions set -XX:TieredStopAtLevel=1: without the
    # optimising compiler a Keycloak start takes a third less CPU (docs/decisions.md).
    engine_java_options: str = ""

    @property
    def engines_dir(self) -> Path:
        """Shared by every data directory, so a machine downloads the engines once."""
        return self.engines or DEFAULT_ENGINES_DIR

    @property
    def logs_dir(self) -> Path:
        return self.data / "logs"


def settings_refused(exc: ValidationError) -> str:
    """What a `Settings()` that refused the environment says, one variable a line (never
    the value: it may be a key)."""
    lines = [
        f"{ENV_PREFIX}{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
        for error in exc.errors()
    ]
    return "the settings refuse the environment:\n  " + "\n  ".join(lines)

"""`hotline bench alerts`: how long an urgent report takes to reach a buyer's webhook.

It measures a RUNNING system (`hotline up`, or a test session's) and starts only a local
HTTPS receiver of its own: a certificate issued by the bench's local CA, which notify trusts
only if it was started with HOTLINE_WEBHOOK_CA_FILE naming that CA, so start the system
with

    HOTLINE_WEBHOOK_CA_FILE=$(hotline bench alerts --print-ca) hotline up

(`--print-ca` creates the CA under the data directory once and prints its certificate's
path). The bench registers a factory, a buyer with a key pair of its own and the link, as
the local platform admin, and a Keycloak user of that buyer's organisation (through the
local bootstrap admin); these stay in the system. It registers a webhook for that buyer
(removed at the end), then submits N urgent reports one after the other, sealed here as
`hotline submit` seals them, and times each from the POST /api/reports to the moment the
receiver holds its alert (`webhook-id` `alert:<case id>`, signature verified). Sealing,
the receipt's derivation and the proof of work are done before the clock starts.

Anchor, measured in the same run: the raw hop, a signed POST of the same payload from this
process to the same receiver over a new TLS connection (the deliverer opens one per
attempt): what the last step alone costs. The issue's target is 2 s at p99.

The receiver (`WebhookReceiver`) and the CA (`LocalCA`) are also what the tests deliver to.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import click
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from standardwebhooks import Webhook, WebhookVerificationError

from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.keys import b64decode_strict, b64encode, generate_keypair
from hotline.shared.pow import solve
from hotline.shared.receipt import derive_receipt, new_receipt
from hotline.shared.reports import ProofOfWork, ReportCreate, routing_metadata

from ..engines import keycloak
from ..engines.process import EngineError, free_port
from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import say

TARGET_P99_MS = 2_000.0  # issue 19: "within 2 s p99 of submission on this machine"
ALERT_TIMEOUT_S = 30.0
MAX_BODY = 16 * 1024 * 1024
RECEIVER_HOSTS = ("localhost", "127.0.0.1")
CA_FOLDER = "webhook-ca"  # under the data directory
LOCAL_ADMIN = (keycloak.LOCAL_ADMIN_USERNAME, keycloak.LOCAL_ADMIN_PASSWORD)


# --- a local CA and an HTTPS receiver ----------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@dataclass(frozen=True)
class LocalCA:
    """A certificate authority of this machine's own, for local HTTPS receivers: notify
    trusts the receivers once HOTLINE_WEBHOOK_CA_FILE names `cert_file`."""

    folder: Path

    @property
    def cert_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def key_file(self) -> Path:
        return self.folder / "ca.key"

    @classmethod
    def load_or_create(cls, folder: Path) -> LocalCA:
        """The CA kept in `folder`, made there (key 0600) the first time."""
        ca = cls(folder)
        if ca.cert_file.exists() and ca.key_file.exists():
            return ca
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Hotline local webhook CA"))
            .issuer_name(_name("Hotline local webhook CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(
            ca.key_file,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ca

    def server_context(self, hosts: tuple[str, ...] = RECEIVER_HOSTS) -> ssl.SSLContext:
        """A server TLS context with a fresh certificate for `hosts`, issued by this CA."""
        ca_key = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise click.ClickException(f"{self.key_file} is not this bench's CA key")
        ca_cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        folder = self.folder / "servers"
        folder.mkdir(exist_ok=True, mode=0o700)
        stem = folder / secrets.token_hex(4)
        cert_path, key_path = stem.with_suffix(".pem"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        cert_path.unlink()
        key_path.unlink()
        return context

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts this CA uses (the bench's anchor)."""
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=self.cert_file)
        return context


@dataclass
class Received:
    """One message as the receiver keeps it: the first verified delivery of its webhook-id."""

    payload: Any
    body: bytes
    at: float  # time.monotonic() when it arrived


@dataclass
class Endpoint:
    """One path of the receiver, with the secret it verifies deliveries with."""

    secret: str
    messages: dict[str, Received] = field(default_factory=dict)
    requests: int = 0  # every request that reached this path
    duplicates: int = 0  # verified deliveries of a webhook-id it had already
    refused: int = 0  # answered `failing_status` on purpose (a receiver outage)
    unverified: int = 0  # a missing or wrong signature: answered 400
    failing: int = 0  # how many of the next requests to refuse
    failing_status: int = 503


class WebhookReceiver:
    """An HTTPS server on 127.0.0.1 that takes Standard Webhooks deliveries, as a buyer's
    receiver should: each request is verified with its path's secret (`Webhook.verify`) and
    each message kept once, by `webhook-id` (a repeat is answered 200 and not kept again).

    `stop()` and `start()` again on the same port make an outage; `fail_next` makes the
    next requests of a path fail with a status. Thread-safe; the server runs in a thread."""

    def __init__(self, ca: LocalCA, port: int | None = None) -> None:
        self.ca = ca
        self.port = port or free_port()
        self.context = ca.server_context()
        self.endpoints: dict[str, Endpoint] = {}
        self.handshake_failures = 0
        self._lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def expect(self, path: str, secret: str) -> Endpoint:
        """Take deliveries at `path`, verified with `secret`."""
        with self._lock:
            endpoint = self.endpoints[path] = Endpoint(secret)
            return endpoint

    def fail_next(self, path: str, count: int, status: int = 503) -> None:
        with self._lock:
            self.endpoints[path].failing = count
            self.endpoints[path].failing_status = status

    def messages(self, path: str) -> dict[str, Received]:
        with self._lock:
            return dict(self.endpoints[path].messages)

    def wait_for(self, path: str, message_id: str, timeout: float) -> Received | None:
        """The message once it has arrived at `path`; None if it has not within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while message_id not in self.endpoints[path].messages:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)
            return self.endpoints[path].messages[message_id]

    def start(self) -> WebhookReceiver:
        server = _Server(("127.0.0.1", self.port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """The status to answer one delivery to `path`."""
        with self._lock:
            endpoint = self.endpoints.get(path)
            if endpoint is None:
                return 404
            endpoint.requests += 1
            if endpoint.failing > 0:
                endpoint.failing -= 1
                endpoint.refused += 1
                return endpoint.failing_status
            try:
                payload = Webhook(endpoint.secret).verify(body, headers)
            except (WebhookVerificationError, ValueError):
                endpoint.unverified += 1
                return 400
            message_id = headers["webhook-id"]
            if message_id in endpoint.messages:
                endpoint.duplicates += 1
            else:
                endpoint.messages[message_id] = Received(payload, body, time.monotonic())
                self._lock.notify_all()
            return 200

    def handshake_failed(self) -> None:
        with self._lock:
            self.handshake_failures += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(10)
        wrapped = self.receiver.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away, or a refused handshake (counted by the handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.server.receiver.handshake_failed()  # e.g. the client does not trust the CA
            raise
        super().setup()

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        length = int(self.headers.get("content-length") or 0)
        if not 0 <= length <= MAX_BODY:
            self._answer(413)
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._answer(self.server.receiver.take(self.path, headers, body))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.send_header("connection", "close")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass  # the bench's output is its figures


# --- the benchmark -----------------------------------------------------------------------------


def ca_folder(settings: Settings) -> Path:
    return settings.data / CA_FOLDER


@click.command("alerts")
@click.option("--reports", default=50, show_default=True, help="Urgent reports submitted.")
@JSON_OPTION
@click.option(
    "--print-ca",
    is_flag=True,
    help="Create the bench's CA (once) and print its certificate's path, for "
    "HOTLINE_WEBHOOK_CA_FILE; measures nothing.",
)
def bench_alerts(reports: int, as_json: bool, print_ca: bool) -> None:
    """Latency from an urgent report's submission to its alert at a buyer's HTTPS webhook
    (p50, p99), beside the raw HTTPS hop to the same receiver.

    Needs a running local system whose notify trusts the bench's CA:
    `HOTLINE_WEBHOOK_CA_FILE=$(hotline bench alerts --print-ca) hotline up`. It registers a
    factory, a buyer, its Keycloak user and a webhook (removed at the end) on that system.
    """
    settings = Settings()
    ca = LocalCA.load_or_create(ca_folder(settings))
    if print_ca:
        click.echo(str(ca.cert_file))
        return
    if reports < 1:
        raise click.BadParameter("1 or more", param_hint="--reports")
    if settings.environment == "production":
        raise click.ClickException("`hotline bench alerts` is for a local system only")
    _check_notify(settings)

    with WebhookReceiver(ca) as receiver:
        world = _BenchWorld.create(settings)
        path = f"/bench/{secrets.token_hex(4)}"
        with world.webhook(receiver.url(path)) as secret:
            receiver.expect(path, secret)
            hop = _raw_hops(receiver, ca, secret, path, reports)
            say("warm-up: one urgent report")
            _one_alert(world, receiver, path, settings, warm_up=True)
            say(f"submitting {reports} urgent reports, one after the other")
            latencies = [_one_alert(world, receiver, path, settings) for _ in range(reports)]
    alert = _percentiles(latencies)
    raw = _percentiles(hop)

    def figure(percentile: int, anchor: str, anchor_value: float) -> Figure:
        value = round(alert[percentile], 1)
        extra = {"reports": reports}
        return Figure(
            f"alert latency p{percentile}", value, "ms", anchor, anchor_value, "lower", extra
        )

    echo_figure(figure(50, "raw HTTPS hop p50", round(raw[50], 1)), as_json)
    echo_figure(figure(99, "raw HTTPS hop p99", round(raw[99], 1)), as_json)
    echo_figure(figure(99, "issue 19's p99 target", TARGET_P99_MS), as_json)
    say(f"{reports} reports; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _percentiles(values_ms: list[float]) -> dict[int, float]:
    """p50 and p99 (nearest rank: p99 of fewer than 100 values is near the maximum)."""
    ordered = sorted(values_ms)
    rank = {p: max(1, math.ceil(p / 100 * len(ordered))) for p in (50, 99)}
    return {p: ordered[r - 1] for p, r in rank.items()}


def _check_notify(settings: Settings) -> None:
    try:
        healthy = httpx.get(f"{settings.notify_url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        raise click.ClickException(
            f"notify does not answer at {settings.notify_url}: start the system with "
            "`HOTLINE_WEBHOOK_CA_FILE=$(hotline bench alerts --print-ca) hotline up`"
        )


@dataclass
class _BenchWorld:
    """The factory, buyer and buyer user the bench made on the running system."""

    settings: Settings
    factory: str
    buyer: str
    user: str  # its password is its name, as for the demo users

    @classmethod
    def create(cls, settings: Settings) -> _BenchWorld:
        tag = secrets.token_hex(4)
        factory, buyer = f"F-BENCH-{tag.upper()}", f"bench-{tag}"
        say(f"registering factory {factory} and buyer {buyer} (they stay in the system)")
        admin = _token(settings, "admin")
        _, public = generate_keypair()
        for resource, body in (
            ("factories", {"code": factory, "name": "Bench Toys", "country": "CN"}),
            ("buyers", {"buyer_id": buyer, "name": "Bench Buyer", "public_key": b64encode(public)}),
            ("links", {"buyer_id": buyer, "factory": factory}),
        ):
            _expect(
                httpx.post(
                    f"{settings.triage_url}/api/admin/{resource}",
                    json=body,
                    headers={"Authorization": f"Bearer {admin}"},
                    timeout=30,
                ),
                201,
                f"registering {resource}",
            )
        return cls(settings, factory, buyer, _keycloak_user(settings, buyer))

    @contextmanager
    def webhook(self, url: str) -> Iterator[str]:
        """A webhook of the bench's buyer at `url` (its secret), removed afterwards."""
        notify = f"{self.settings.notify_url}/api/webhooks"
        created = httpx.post(notify, json={"url": url}, headers=self._auth(), timeout=30)
        _expect(created, 201, "registering the bench's webhook")
        try:
            yield str(created.json()["secret"])
        finally:
            httpx.delete(f"{notify}/{created.json()['id']}", headers=self._auth(), timeout=30)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {_token(self.settings, self.user)}"}


def _token(settings: Settings, user: str) -> str:
    try:
        return keycloak.password_token(settings, user, user)
    except (httpx.HTTPError, EngineError) as exc:
        raise click.ClickException(
            f"Keycloak at {settings.keycloak_url} gave no token for {user} "
            f"({type(exc).__name__}): is this a local system with its demo realm?"
        ) from None


def _expect(response: httpx.Response, status: int, doing: str) -> None:
    if response.status_code != status:
        raise click.ClickException(f"{doing}: {response.status_code} {response.text[:300]}")


def _keycloak_user(settings: Settings, org: str) -> str:
    """A buyer user of `org` in the local realm, through the local bootstrap admin."""
    try:
        return keycloak.add_local_user(settings, f"bench-{secrets.token_hex(4)}", "buyer", org)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"creating the bench's buyer user in Keycloak: {exc}") from None


def _raw_hops(
    receiver: WebhookReceiver, ca: LocalCA, secret: str, path: str, count: int
) -> list[float]:
    """The anchor: signed POSTs from here to the receiver, a new TLS connection each."""
    say(f"anchor: {count} signed POSTs straight to the receiver")
    payload = json.dumps({"type": "alert", "case_id": str(uuid.uuid4()), "content": None})
    hops = []
    with httpx.Client(
        verify=ca.client_context(), limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        for number in range(count):
            message_id = f"anchor:{number}:{secrets.token_hex(4)}"
            now = dt.datetime.now(dt.UTC)
            headers = {
                "webhook-id": message_id,
                "webhook-timestamp": str(math.floor(now.timestamp())),
                "webhook-signature": Webhook(secret).sign(message_id, now, payload),
                "content-type": "application/json",
            }
            started = time.monotonic()
            response = client.post(receiver.url(path), content=payload, headers=headers)
            hops.append((time.monotonic() - started) * 1000)
            _expect(response, 200, "the anchor's POST to the receiver")
    return hops


def _one_alert(
    world: _BenchWorld,
    receiver: WebhookReceiver,
    path: str,
    settings: Settings,
    warm_up: bool = False,
) -> float:
    """Submit one urgent report; the ms from its POST to its alert at the receiver."""
    report = _urgent_report(settings, world.factory)
    started = time.monotonic()
    _expect(
        httpx.post(
            f"{settings.intake_url}/api/reports", json=report.model_dump(mode="json"), timeout=30
        ),
        201,
        "submitting an urgent report",
    )
    received = receiver.wait_for(path, f"alert:{report.case_id}", ALERT_TIMEOUT_S)
    if received is not None:
        return (received.at - started) * 1000
    if receiver.handshake_failures:
        raise click.ClickException(
            "notify does not trust the bench's receiver (its TLS handshakes failed): start the "
            "system with `HOTLINE_WEBHOOK_CA_FILE=$(hotline bench alerts --print-ca) hotline up`"
        )
    what = "the warm-up alert" if warm_up else "an alert"
    raise click.ClickException(f"{what} did not arrive within {ALERT_TIMEOUT_S:.0f} s")


def _urgent_report(settings: Settings, factory: str) -> ReportCreate:
    """An urgent safety report sealed to the factory's recipients, its proof of work solved."""
    recipients = httpx.get(f"{settings.intake_url}/api/recipients/{factory}", timeout=30)
    _expect(
        recipients, 200, f"reading the recipients of {factory} (is an operator key registered?)"
    )
    keys = {kid: b64decode_strict(pub) for kid, pub in recipients.json()["content"].items()}
    case_id = str(uuid.uuid4())
    routing = routing_metadata(factory, ["safety"], True, "en")
    content = seal_envelope(
        b"The fire exit on floor 3 is locked at night (bench)",
        case_id=case_id,
        kind="content",
        routing=routing,
        recipients=keys,
    )
    derived = derive_receipt(new_receipt())
    challenge = httpx.get(f"{settings.intake_url}/api/challenge", timeout=30).json()
    return ReportCreate(
        case_id=case_id,
        factory=factory,
        categories=["safety"],
        urgent=True,
        language="en",
        channel="phone",
        lookup_token=derived.lookup_token.hex(),
        reply_key=b64encode(derived.reply_public),
        content=content,
        pow=ProofOfWork(
            challenge=challenge["challenge"],
            solution=solve(challenge["challenge"], challenge["difficulty"]),
        ),
    )

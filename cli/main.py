"""The `hotline` command: run the local system, administer it, submit and read reports."""

from __future__ import annotations

import importlib
import json
import signal
import time
from pathlib import Path
from typing import Any, get_args

import click
import httpx
from pydantic import ValidationError

from hotline.shared.config import Settings, settings_refused
from hotline.shared.envelope import EnvelopeError, open_envelope
from hotline.shared.events import Severity
from hotline.shared.keys import (
    CryptoError,
    public_key_path,
    write_keypair,
)
from hotline.shared.reports import routing_metadata
from hotline.shared.taxonomy import categories as taxonomy_categories
from hotline.shared.taxonomy import category_codes
from hotline.triage.contract import MAX_PAGE, Status

from .casework import CASEWORK_COMMANDS
from .conversation import BUYER_COMMANDS, OPERATOR_COMMANDS
from .digests import BUYER_DIGEST_COMMANDS
from .http import tls
from .options import KEY_OPTION, private_key
from .reports import seal_report
from .session import (
    CLI_CLIENT_ID,
    bearer_token,
    call,
    save_token,
    token_error,
    token_request,
    token_user,
)

DEMO_USERS = {
    "admin": "platform-admin",
    "operator": "triage-analyst",
    "auditor": "compliance-officer",
    "buyer1": "buyer (org buyer-1)",
    "buyer2": "buyer (org buyer-2)",
    "manager1": "factory-manager (org F-001)",
}


class LazyGroup(click.Group):
    """A group whose heavier subcommands are imported only when one of them runs (or help
    lists them), so that every other `hotline` command starts without loading them: the
    benchmarks, the audit verifier and the registry's database driver cost most of a second
    of a loaded machine's CPU per command (click's documented lazy-loading pattern)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy  # command name -> "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a HOTLINE_* variable the settings refuse is a clear error."""
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title != Settings.__name__:
                raise
            raise click.ClickException(settings_refused(exc)) from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, attribute = self.lazy[cmd_name].split(":")
        command = getattr(importlib.import_module(module, __package__), attribute)
        assert isinstance(command, click.Command), self.lazy[cmd_name]
        return command


@click.group(
    cls=LazyGroup,
    lazy={
        "admin": ".admin:admin",
        "audit": ".audit:audit",
        "bench": ".bench:bench",
        "stats": ".stats:stats",
        "webhooks": ".webhooks:webhooks",
    },
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="hotline")
def cli() -> None:
    """Hotline: a secure, anonymous grievance channel for factory workers."""


# --- running the system ------------------------------------------------------------------


@cli.command()
@click.option(
    "--replicas",
    type=click.IntRange(1, 8),
    default=1,
    show_default=True,
    envvar="HOTLINE_REPLICAS",
    help="Instances of each service, sharing its consumer groups; instance k listens on "
    "its port + 10 k.",
)
def up(replicas: int) -> None:
    """Install (first run) and start the whole system locally; Ctrl-C stops it all.

    Starts Kafka, Keycloak and the MongoDB wire server from $HOTLINE_DATA (default
    ~/.local/share/hotline), then the intake, triage, notify and audit-log services. Whatever
    dies is started again, after a back-off that grows while it keeps dying; it says so here.
    """
    from .engines.local import LocalSystem
    from .engines.process import EngineError

    settings = Settings()
    system = LocalSystem(settings, replicas=replicas)
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # A shell starts background jobs with SIGINT ignored, and Python keeps it so: restore
    # Ctrl-C explicitly, it is how a person stops the system.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    try:
        system.start()
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("Stopping...", err=True)
        system.stop()
        return
    s = settings
    click.echo(f"\nHotline is up ({time.monotonic() - started:.0f}s). Data: {s.data}")
    for instance in system.service_instances():
        click.echo(f"  {instance.name:<10} http://{s.host}:{instance.port}")
    click.echo(f"  Keycloak   {s.keycloak_url}  (realm {s.keycloak_realm})")
    click.echo(f"  Kafka      {s.kafka_bootstrap}")
    click.echo(f"  MongoDB    {s.mongo_url}")
    click.echo("Demo users (password = user name), local only:")
    for user, role in DEMO_USERS.items():
        click.echo(f"  {user:<9} {role}")
    click.echo(f"Logs: {s.logs_dir}. Press Ctrl-C to stop.")
    try:
        while True:
            system.supervise()
            time.sleep(1)  # the supervisor's round: a dead child is seen within a second
    except KeyboardInterrupt:
        click.echo("\nStopping...", err=True)
    finally:
        system.stop()
        click.echo("Stopped.", err=True)


@cli.group()
def topics() -> None:
    """Kafka topics, from the one declared list (deploy/kafka/topics.json)."""


@topics.command("create")
def topics_create() -> None:
    """Create every declared topic that does not exist yet (idempotent)."""
    from .engines.kafka import create_topics, declared_topics

    create_topics(Settings())
    click.echo(f"{len(declared_topics())} topics present")


# --- identity ----------------------------------------------------------------------------


DEMO_USER_OPTION = click.option(
    "--user",
    type=click.Choice(sorted(DEMO_USERS)),
    help="A demo user of the LOCAL realm (password = user name); refused in production.",
)


@cli.command()
@DEMO_USER_OPTION
def login(user: str | None) -> None:
    """Sign in and cache a refreshable token for the commands that need one.

    Without --user: the OAuth device authorization grant (open the link it prints in a
    browser and confirm the code). With --user NAME: a demo user of the local realm, by the
    password grant, e.g. `hotline login --user operator`. The cache
    (~/.config/hotline/token.json, mode 0600) keeps one login: signing in again replaces it.
    Commands refresh the token as it expires; HOTLINE_TOKEN, when set, overrides the cache.
    """
    settings = Settings()
    if user is not None:
        response = _demo_token_response(settings, user, "login --user")
        path = save_token(settings, response, demo_user=user)
        click.echo(f"Logged in as {user} ({DEMO_USERS[user]}); token cached in {path}")
        return
    try:
        start = httpx.post(
            settings.device_auth_url, data={"client_id": CLI_CLIENT_ID}, timeout=10, verify=tls()
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach Keycloak at {settings.keycloak_url}: {exc}"
        ) from None
    if start.status_code != 200:
        raise click.ClickException(
            f"device login refused ({start.status_code}): {start.text[:200]}"
        )
    grant = start.json()
    click.echo(f"Open {grant.get('verification_uri_complete') or grant['verification_uri']}")
    click.echo(f"and confirm the code {grant['user_code']}. Waiting...")
    interval = float(grant.get("interval", 5))
    deadline = time.monotonic() + float(grant.get("expires_in", 600))
    while time.monotonic() < deadline:
        time.sleep(interval)  # RFC 8628 §3.5: the client must wait `interval` between polls
        reply = token_request(
            settings,
            grant_type="urn:ietf:params:oauth:grant-type:device_code",
            device_code=grant["device_code"],
        )
        body = reply.json()
        if reply.status_code == 200:
            path = save_token(settings, body, demo_user=None)
            click.echo(f"Logged in as {token_user(body['access_token'])}; token cached in {path}")
            return
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise click.ClickException(
                f"login failed: {error}: {body.get('error_description', '')}"
            )
    raise click.ClickException("the login code expired; run `hotline login` again")


@cli.command("dev-token")
@click.option(
    "--user", required=True, type=click.Choice(sorted(DEMO_USERS)), help="A local demo user."
)
def dev_token(user: str) -> None:
    """Print an access token of a LOCAL demo user, for scripts (password grant; refused in
    production). It lasts 5 minutes and is not refreshed: people use `hotline login --user`."""
    click.echo(_demo_token_response(Settings(), user, "dev-token")["access_token"])


def _demo_token_response(settings: Settings, user: str, command: str) -> dict[str, Any]:
    """A token response for a local demo user (password = user name) by the password grant."""
    if settings.environment == "production":
        raise click.ClickException(
            f"`hotline {command}` is for the local demo realm only; use `hotline login`"
        )
    response = token_request(settings, grant_type="password", username=user, password=user)
    if response.status_code != 200:
        raise click.ClickException(
            f"Keycloak at {settings.keycloak_url} refused a token for {user}: "
            f"{token_error(response)} (demo users exist only in the local realm)"
        )
    body: dict[str, Any] = response.json()
    return body


# --- keys --------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """Recipient key pairs (X25519)."""


@keys.command("generate")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file to create (mode 0600); the public key goes to FILE.pub.",
)
def keys_generate(out: Path) -> None:
    """Create an X25519 recipient key pair; print its key id. Never overwrites a file.

    FILE holds the private key (keep it; it never leaves this machine), FILE.pub the public
    key (register it with `hotline admin ...`). Each file's first line says which it is.
    """
    try:
        kid = write_keypair(out)
    except CryptoError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(kid)
    click.echo(f"private key: {out} (keep it secret)", err=True)
    click.echo(f"public key:  {public_key_path(out)} (register this one)", err=True)


# --- reports -----------------------------------------------------------------------------


@cli.command("categories")
@click.option("--language", default="en", show_default=True, help="Label language.")
def categories_command(language: str) -> None:
    """List the category codes and what each covers."""
    for category in taxonomy_categories(language):
        click.echo(f"{category.code:<15} {category.label} — {category.hint}")


@cli.command()
@click.option("--factory", required=True, help="Factory code, e.g. F-001.")
@click.option(
    "--category",
    "categories",
    required=True,
    multiple=True,
    help="Category code (repeatable); see `hotline categories`.",
)
@click.option("--urgent", is_flag=True, help="Safety, withheld wages, strike: escalate now.")
@click.option("--text", required=True, help="What happened (encrypted before it leaves).")
@click.option("--identity", help="Name / how to reach the worker (operator keys only).")
@click.option("--language", default="en", show_default=True, help="Language of the report.")
@click.option("--json", "as_json", is_flag=True, help="Print {case_id, receipt} as JSON.")
@click.option(
    "--print-case-id",
    is_flag=True,
    help="Print only the case id on stdout, for `CASE_ID=$(hotline submit ...)`; the "
    "receipt then goes to stderr (it must still reach the worker).",
)
def submit(
    factory: str,
    categories: tuple[str, ...],
    urgent: bool,
    text: str,
    identity: str | None,
    language: str,
    as_json: bool,
    print_case_id: bool,
) -> None:
    """Seal a report on this machine and submit it (the operator's path for phone reports).

    Prints the case id and the worker's receipt, which is shown only once.
    """
    if as_json and print_case_id:
        raise click.UsageError("--json and --print-case-id are alternatives: pick one")
    unknown = sorted(set(categories) - category_codes())
    if unknown:
        raise click.BadParameter(
            f"unknown {unknown}; see `hotline categories`", param_hint="--category"
        )
    if not text.strip():
        raise click.BadParameter("the report text is empty", param_hint="--text")
    s = Settings()
    sealed = seal_report(
        s.intake_url,
        factory,
        list(categories),
        text,
        urgent=urgent,
        identity=identity,
        language=language,
    )
    case_id, receipt = sealed.report.case_id, sealed.receipt
    call("POST", f"{s.intake_url}/api/reports", json_body=sealed.report.model_dump(mode="json"))
    receipt_line = f"receipt: {receipt}   (give it to the worker; it is shown only once)"
    if as_json:
        click.echo(json.dumps({"case_id": case_id, "receipt": receipt}))
    elif print_case_id:
        click.echo(case_id)
        click.echo(receipt_line, err=True)
    else:
        click.echo(f"case id: {case_id}")
        click.echo(receipt_line)


def _open(envelope: dict[str, Any], key: bytes, case_id: str, routing: dict[str, Any]) -> str:
    try:
        plaintext = open_envelope(envelope, private_key=key, case_id=case_id, routing=routing)
    except EnvelopeError as exc:
        raise click.ClickException(f"case {case_id}: cannot open the envelope: {exc}") from None
    return plaintext.decode(errors="replace")


@cli.group()
def digests() -> None:
    """A buyer's signed case digests (role buyer): pull, verify, open, export, ack, ask."""


@cli.group()
def cases() -> None:
    """The operator's cases (role triage-analyst)."""


@cases.command("list")
@click.option("--status", type=click.Choice(get_args(Status)), help="Only cases in this status.")
@click.option("--severity", type=click.Choice(get_args(Severity)), help="Only this severity.")
@click.option("--factory", help="Only cases of this factory code.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), help="Cases per page (server default).")
@click.option("--after", help="The cursor a previous page printed: the page after it.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON (cases, next).")
def cases_list(
    status: str | None,
    severity: str | None,
    factory: str | None,
    limit: int | None,
    after: str | None,
    as_json: bool,
) -> None:
    """The queue, most urgent deadline first, one page: routing metadata, severity, status
    (no content). The last line gives the `--after` of the next page, if there is one."""
    s = Settings()
    wanted = {
        "status": status,
        "severity": severity,
        "factory": factory,
        "limit": limit,
        "after": after,
    }
    params = {name: value for name, value in wanted.items() if value is not None}
    found = call("GET", f"{s.triage_url}/api/cases", auth=bearer_token(s), params=params)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for case in found["cases"]:
        late = case.get("breached") or []
        click.echo(
            f"{case['case_id']}  {case['severity']:<8} due {case['due']}  "
            f"{case['factory']}  {','.join(case['categories'])}  {case['status']}"
            + (f"  LATE: {','.join(late)}" if late else "")  # clocks running past due
        )
    if found["next"]:
        click.echo(f"more: --after {found['next']}")


@cases.command("show")
@click.argument("case_id")
@KEY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cases_show(case_id: str, key_file: Path, as_json: bool) -> None:
    """Decrypt one case's content and identity on this machine (operator key)."""
    s = Settings()
    key = private_key(key_file)
    case = call("GET", f"{s.triage_url}/api/cases/{case_id}", auth=bearer_token(s))
    routing = routing_metadata(
        case["factory"], case["categories"], case["urgent"], case["language"]
    )
    shown = {k: v for k, v in case.items() if k not in ("content", "identity", "server_encrypted")}
    shown["content"] = _open(case["content"], key, case_id, routing)
    shown["identity"] = (
        _open(case["identity"], key, case_id, routing) if case.get("identity") else None
    )
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
        return
    for name, value in shown.items():
        click.echo(f"{name:>10}: {value}")


@cases.command("attachments")
@click.argument("case_id")
@KEY_OPTION
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the decrypted files into (created if missing).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON.")
def cases_attachments(case_id: str, key_file: Path, out_dir: Path, as_json: bool) -> None:
    """Decrypt one case's photos and voice notes into a folder on this machine (operator key).

    The report's files are named `<n>.<ext>` by attachment order, those of the worker's
    answers `answer-<message id prefix>-<n>.<ext>`; the worker's photos were re-encoded
    without metadata before they were sealed.
    """
    s = Settings()
    key = private_key(key_file)
    found = call("GET", f"{s.intake_url}/api/cases/{case_id}/attachments", auth=bearer_token(s))
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = [("", found["routing"], found["attachments"], None)] + [
        (f"answer-{answer['message_id'][:8]}-", answer["routing"], answer["attachments"], answer)
        for answer in found.get("answers", [])
    ]
    written = []
    for prefix, routing, envelopes, answer in groups:
        for number, envelope in enumerate(envelopes, start=1):
            try:
                plaintext = open_envelope(
                    envelope, private_key=key, case_id=case_id, routing=routing
                )
            except EnvelopeError as exc:
                raise click.ClickException(
                    f"attachment {prefix}{number}: cannot open it: {exc}"
                ) from None
            media_type, _, data = plaintext.partition(b"\n")
            kind = media_type.decode("ascii", "replace")
            path = out_dir / f"{prefix}{number}{ATTACHMENT_SUFFIXES.get(kind, '.bin')}"
            path.write_bytes(data)
            item = {"file": str(path), "type": kind, "bytes": len(data)}
            if answer is not None:
                item["answer"] = answer["message_id"]
            written.append(item)
    if as_json:
        click.echo(json.dumps(written, indent=2))
        return
    if not written:
        click.echo("no attachments")
    for item in written:
        click.echo(f"{item['file']}  {item['type']}  {item['bytes']} bytes")


ATTACHMENT_SUFFIXES = {
    "image/jpeg": ".jpg",
    "audio/webm": ".webm",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
}


for command in CASEWORK_COMMANDS:
    cases.add_command(command)
for command in OPERATOR_COMMANDS:
    cases.add_command(command)
for command in (*BUYER_DIGEST_COMMANDS, *BUYER_COMMANDS):
    digests.add_command(command)


def main() -> None:
    cli(prog_name="hotline")


if __name__ == "__main__":
    main()

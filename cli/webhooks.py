"""`hotline webhooks ...`: a buyer's webhook endpoints (role buyer, its own organisation).

Notify posts each digest issued for the buyer, and an alert per urgent case, to every
endpoint the buyer registered, signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) with the endpoint's secret, retried with back-off until delivered or
dead. A receiver verifies the signature with the secret and de-duplicates by `webhook-id`.
"""

from __future__ import annotations

import json

import click

from hotline.shared.config import Settings

from .session import bearer_token, call


def _api(settings: Settings) -> str:
    return f"{settings.notify_url}/api/webhooks"


@click.group()
def webhooks() -> None:
    """Your organisation's webhooks (role buyer): signed digests and urgent alerts."""


@webhooks.command("add")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print {id, url, secret} as JSON.")
def webhooks_add(url: str, as_json: bool) -> None:
    """Register an HTTPS endpoint; prints its id and its signing secret, shown only once."""
    s = Settings()
    created = call("POST", _api(s), auth=bearer_token(s), json_body={"url": url})
    if as_json:
        click.echo(json.dumps(created))
        return
    click.echo(f"webhook {created['id']} -> {created['url']}")
    click.echo(f"secret: {created['secret']}")
    click.echo(
        "Keep the secret now: it is not shown again. Your receiver verifies each delivery's "
        "webhook-signature with it, and ignores a webhook-id it has already.",
        err=True,
    )


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def webhooks_list(as_json: bool) -> None:
    """Your endpoints and how many deliveries each has pending (being tried) and dead."""
    s = Settings()
    found = call("GET", _api(s), auth=bearer_token(s))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no webhooks")
    for hook in found:
        click.echo(f"{hook['id']}  {hook['url']}  pending {hook['pending']}  dead {hook['dead']}")


@webhooks.command("remove")
@click.argument("webhook_id")
def webhooks_remove(webhook_id: str) -> None:
    """Remove endpoint WEBHOOK_ID and its deliveries."""
    s = Settings()
    call("DELETE", f"{_api(s)}/{webhook_id}", auth=bearer_token(s))
    click.echo(f"webhook {webhook_id} removed")


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option(
    "--status",
    "state",
    type=click.Choice(["pending", "delivered", "dead"]),
    help="Only the deliveries in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def webhooks_deliveries(webhook_id: str, state: str | None, as_json: bool) -> None:
    """The deliveries of endpoint WEBHOOK_ID: id, state, attempts, the last failure."""
    s = Settings()
    params = {"status": state} if state else None
    found = call("GET", f"{_api(s)}/{webhook_id}/deliveries", auth=bearer_token(s), params=params)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no deliveries")
    for delivery in found:
        failure = f"  last: {delivery['last_error']}" if delivery["last_error"] else ""
        click.echo(
            f"{delivery['id']}  {delivery['status']}  {delivery['attempts']} attempt(s){failure}"
        )


@webhooks.command("redeliver")
@click.argument("delivery_id", required=False)
@click.option("--dead", is_flag=True, help="Every dead delivery (of --webhook, or of all).")
@click.option("--webhook", "webhook_id", help="With --dead: only this endpoint's.")
def webhooks_redeliver(delivery_id: str | None, dead: bool, webhook_id: str | None) -> None:
    """Send again delivery DELIVERY_ID (as `webhooks deliveries` lists it: <webhook
    id>:<message id>), or with --dead every dead one, with a fresh series of attempts. The
    webhook-id is the same, so a receiver that has the message ignores it."""
    if (delivery_id is None) == (not dead):
        raise click.UsageError("give a DELIVERY_ID or --dead, not both")
    if webhook_id is not None and not dead:
        raise click.UsageError("--webhook goes with --dead")
    s = Settings()
    auth = bearer_token(s)
    if delivery_id is not None:
        endpoint = delivery_id.split(":", 1)[0]
        call(
            "POST",
            f"{_api(s)}/{endpoint}/redeliver",
            auth=auth,
            json_body={"delivery": delivery_id},
        )
        click.echo(f"delivery {delivery_id} queued again")
        return
    endpoints = (
        [webhook_id] if webhook_id else [hook["id"] for hook in call("GET", _api(s), auth=auth)]
    )
    total = 0
    for endpoint in endpoints:
        answer = call(
            "POST", f"{_api(s)}/{endpoint}/redeliver", auth=auth, json_body={"dead": True}
        )
        total += int(answer["redelivered"])
    click.echo(f"{total} dead deliveries queued again")

"""Bad input from issue 20's list, against the running services over real HTTP: each gets a
clear 4xx, never a 500, and the state stays as it was.

- a JSON body with `NaN` where a value is expected (Python's JSON reader accepts it);
- a lone surrogate (`"\\ud800"`, valid JSON, not text) in a factory code, a factory name, a
  buyer id, on intake and on the admin API;
- a start index beyond any integer the store holds on the public audit log;
- a body far over any report's size, as 10 MB of leading whitespace: refused while reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.store import Databases
from tests.support.registry import unique_factory_code
from tests.support.tokens import password_token

JSON = {"content-type": "application/json"}


def report_body(**fields: str) -> str:
    """A report body as raw JSON text (so NaN and lone surrogate escapes reach the server as
    a client may send them): `fields` are JSON texts of the fields to set."""
    body = {
        "factory": '"F-001"',
        "categories": '["safety"]',
        "urgent": "false",
        "language": '"en"',
        **fields,
    }
    return "{" + ",".join(f'"{name}":{value}' for name, value in body.items()) + "}"


def admin_headers(system: LocalSystem) -> dict[str, str]:
    token = password_token(system.settings, "admin", "admin")
    return {**JSON, "authorization": f"Bearer {token}"}


def refused(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])


@pytest.mark.parametrize(
    "fields",
    [
        {"urgent": "NaN"},
        {"urgent": "Infinity"},
        {"urgent": '"yes"'},  # a boolean is true or false, not a word that reads as one
        {"urgent": "1"},
        {"factory": '"F-\\ud800"'},
        {"categories": '["\\ud800"]'},
        {"language": '"\\udfff"'},
    ],
)
def test_intake_refuses_nan_and_lone_surrogates(
    system: LocalSystem, fields: dict[str, Any]
) -> None:
    response = httpx.post(
        f"{system.settings.intake_url}/api/reports",
        content=report_body(**fields).encode(),
        headers=JSON,
        timeout=30,
        verify=tls(),
    )
    refused(response)


@pytest.mark.parametrize(
    ("resource", "body"),
    [
        ("factories", '{"code":"F-\\ud800","name":"Sunrise Toys","country":"CN"}'),
        ("factories", '{"code":"FACTORY-CODE","name":"Sunrise \\ud800","country":"CN"}'),
        ("factories", '{"code":"FACTORY-CODE","name":"\\u202e\\u0007\\u0000evil","country":"CN"}'),
        ("factories", '{"code":"FACTORY-CODE\\n","name":"Sunrise Toys","country":"CN"}'),
        ("factories", '{"code":"FACTORY-CODE","name":"Sunrise Toys","country":"DE\\n"}'),
        ("factories", '{"code":"FACTORY-CODE","name":"Sunrise Toys","country":"CN","x":NaN}'),
        ("buyers", '{"buyer_id":"b-\\ud800","name":"Acme","public_key":"AAAA"}'),
    ],
)
def test_the_admin_api_refuses_bad_text_and_stores_nothing(
    system: LocalSystem, resource: str, body: str
) -> None:
    code = unique_factory_code()
    response = httpx.post(
        f"{system.settings.triage_url}/api/admin/{resource}",
        content=body.replace("FACTORY-CODE", code).encode(),
        headers=admin_headers(system),
        timeout=30,
        verify=tls(),
    )
    refused(response)
    client: MongoClient[dict[str, Any]] = MongoClient(system.settings.mongo_url)
    with client:
        assert Databases(client, system.settings.mongo_db).factories.find_one({"_id": code}) is None


@pytest.mark.parametrize("start", ["99999999999999999999999", "-1", "1e3", "NaN"])
def test_the_public_log_refuses_an_impossible_start(system: LocalSystem, start: str) -> None:
    response = httpx.get(
        f"{system.settings.audit_url}/api/entries",
        params={"start": start},
        timeout=30,
        verify=tls(),
    )
    refused(response)
    assert start not in response.text, "the answer names the problem, not the value sent"


def test_ten_megabytes_of_whitespace_are_a_clear_refusal(system: LocalSystem) -> None:
    padded = b" " * 10_000_000 + report_body().encode()
    response = httpx.post(
        f"{system.settings.intake_url}/api/reports",
        content=padded,
        headers=JSON,
        timeout=60,
        verify=tls(),
    )
    refused(response)


@pytest.mark.parametrize("service", ["intake", "triage", "notify", "audit"])
def test_a_body_over_the_limit_is_refused_while_it_is_read(
    system: LocalSystem, service: str
) -> None:
    """Over intake's 24 MiB (its reports carry attachments) or the others' 1 MiB, sent
    chunked, so no Content-Length tells the size: the service stops reading and says 413."""
    url = {
        "intake": f"{system.settings.intake_url}/api/reports",
        "triage": f"{system.settings.triage_url}/api/admin/factories",
        "notify": f"{system.settings.notify_url}/api/webhooks",
        "audit": f"{system.settings.audit_url}/cosignature",
    }[service]

    def chunks() -> Iterator[bytes]:
        for _ in range(26):
            yield b" " * (1024 * 1024)

    response = httpx.post(url, content=chunks(), headers=JSON, timeout=60, verify=tls())
    assert response.status_code == 413, (response.status_code, response.text[:300])

"""A registry set up through the platform admin's API of a running triage service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.keys import b64encode, generate_keypair, key_id
from tests.support.cli import hotline
from tests.support.tokens import password_token


@dataclass(frozen=True)
class Party:
    """A recipient organisation's key pair, made in the test (never on a server)."""

    private: bytes
    public: bytes

    @classmethod
    def new(cls) -> Party:
        private, public = generate_keypair()
        return cls(private, public)

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    @property
    def public_b64(self) -> str:
        return b64encode(self.public)


class AdminApi:
    """The admin API as the `admin` demo user calls it (a fresh token per call: tokens
    live 300 s, longer than some test modules run)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def post(self, resource: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.settings.triage_url}/api/admin/{resource}",
            json=body,
            headers={"Authorization": f"Bearer {self._token()}"},
            timeout=30,
            verify=tls(),
        )

    def get(self, resource: str) -> httpx.Response:
        return httpx.get(
            f"{self.settings.triage_url}/api/admin/{resource}",
            headers={"Authorization": f"Bearer {self._token()}"},
            timeout=30,
            verify=tls(),
        )

    def created(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(resource, body)
        assert response.status_code == 201, f"{resource}: {response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    def operator_key_file(self, folder: Path) -> Path:
        """A new operator key file in `folder` (`hotline keys generate`), its public key
        registered: reports are sealed to operator keys, so a test that submits needs one."""
        key_file = folder / "operator.key"
        hotline("keys", "generate", "--out", str(key_file))
        public = (folder / "operator.key.pub").read_text().splitlines()[1]
        self.created("operator-keys", {"public_key": public})
        return key_file

    def _token(self) -> str:
        return password_token(self.settings, "admin", "admin")


def unique_factory_code() -> str:
    """A factory code no other test module uses (they share the session's registry)."""
    return f"F-T{uuid.uuid4().hex[:10].upper()}"


def unique_buyer_id() -> str:
    return f"buyer-t{uuid.uuid4().hex[:10]}"

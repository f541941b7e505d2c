"""Proof of work: the anonymous form's throttle, which identifies nobody.

Intake cannot throttle per client (it stores nothing about one), so every submission pays a
small cost instead: the client fetches a server-signed challenge and finds a counter whose
hash starts with ``difficulty`` zero bits (Hashcash). The challenge is

    v1.<nonce>.<difficulty>.<expiry>.<mac>

``nonce`` 16 random bytes (base64url, no padding), ``expiry`` a Unix time in whole minutes,
``mac`` HMAC-SHA256 under intake's challenge key over everything before its dot. A solution is
a decimal counter such that SHA-256(challenge ":" solution) has ``difficulty`` leading zero
bits. Intake records each spent challenge's nonce (a report's in its case, a lookup's until
it expires), so a solution is spent once; that record is about the challenge, not about
whoever solved it.

Difficulty rises with the global submission rate (:class:`DifficultyGauge`): one more bit,
so twice the expected work, for each doubling above the calm rate. At the default 16 bits a
solution takes 2^16 hashes on average (tens of milliseconds in Python, a fraction of a second
in a phone's browser).

Pure except for :func:`new_challenge`'s randomness and the clock passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

VERSION: Final = "v1"
NONCE_BYTES: Final = 16
MAX_DIFFICULTY: Final = 28
MAX_SOLUTION_CHARS: Final = 20
MAX_CHALLENGE_CHARS: Final = 200


class ChallengeError(Exception):
    """A proof of work refused; the subclass says why (messages never echo the input)."""


class BadChallenge(ChallengeError):
    """Not a challenge this service issued (malformed, or its signature does not check)."""


class StaleChallenge(ChallengeError):
    """The challenge expired: fetch a new one."""


class WrongSolution(ChallengeError):
    """The solution does not have the challenge's leading zero bits."""


@dataclass(frozen=True)
class Challenge:
    nonce: str
    difficulty: int
    expiry_minute: int

    @property
    def expires_at(self) -> float:
        return self.expiry_minute * 60.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def new_challenge(key: bytes, difficulty: int, now: float, ttl_minutes: int = 10) -> str:
    """A fresh challenge of ``difficulty`` bits, valid for ``ttl_minutes`` from ``now``."""
    if not 0 <= difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"difficulty must be 0..{MAX_DIFFICULTY}")
    expiry = int(now // 60) + ttl_minutes
    body = f"{VERSION}.{_b64(secrets.token_bytes(NONCE_BYTES))}.{difficulty}.{expiry}"
    return f"{body}.{_mac(key, body)}"


def pow_digest(challenge: str, solution: str) -> bytes:
    """SHA-256 of ``challenge ":" solution`` (UTF-8): what must start with zero bits."""
    return hashlib.sha256(f"{challenge}:{solution}".encode()).digest()


def leading_zero_bits(digest: bytes) -> int:
    """Number of leading zero bits, byte 0's high bit first."""
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def check_solution(key: bytes, challenge: str, solution: str, now: float) -> Challenge:
    """The challenge, if ``solution`` solves it and it is this key's and unexpired; raises
    BadChallenge, StaleChallenge or WrongSolution otherwise. Whether it was already spent is
    the caller's record."""
    # Ours are ASCII: anything else would fail the MAC's encoding or compare_digest (a 500).
    if (
        not isinstance(challenge, str)
        or len(challenge) > MAX_CHALLENGE_CHARS
        or not challenge.isascii()
    ):
        raise BadChallenge("not a challenge issued here")
    parts = challenge.split(".")
    if len(parts) != 5 or parts[0] != VERSION:
        raise BadChallenge("not a challenge issued here")
    body, mac = challenge.rsplit(".", 1)
    if not hmac.compare_digest(_mac(key, body), mac):
        raise BadChallenge("not a challenge issued here")
    _, nonce, difficulty_text, expiry_text = body.split(".")
    parsed = Challenge(nonce, int(difficulty_text), int(expiry_text))
    if now >= parsed.expires_at:
        raise StaleChallenge("the challenge expired; fetch a new one")
    if not (
        isinstance(solution, str)
        and 0 < len(solution) <= MAX_SOLUTION_CHARS
        and solution.isascii()
        and solution.isdigit()
        and (solution == "0" or not solution.startswith("0"))
    ):
        raise WrongSolution("a solution is a decimal counter")
    if leading_zero_bits(pow_digest(challenge, solution)) < parsed.difficulty:
        raise WrongSolution("the solution does not solve the challenge")
    return parsed


def solve(challenge: str, difficulty: int) -> str:
    """The smallest counter solving ``challenge`` (for the CLI and tests)."""
    counter = 0
    while leading_zero_bits(pow_digest(challenge, str(counter))) < difficulty:
        counter += 1
    return str(counter)


class DifficultyGauge:
    """Difficulty from the global rate of accepted submissions over the last minute: ``base``
    bits up to ``calm_per_minute``, one more bit per doubling above it, at most MAX_RISE more
    (64 times the work: measured in Chromium, 22 bits take about 6 s on this machine's cores,
    so a cheap phone under a flood waits tens of seconds, not minutes). In memory and per
    process: it counts submissions, never who made them."""

    WINDOW: Final = 60.0
    MAX_RISE: Final = 6

    def __init__(self, base: int, calm_per_minute: int) -> None:
        self.base = base
        self.calm = max(1, calm_per_minute)
        self._accepted: deque[float] = deque()

    def accepted(self, now: float | None = None) -> None:
        self._accepted.append(time.monotonic() if now is None else now)

    def difficulty(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        while self._accepted and self._accepted[0] <= now - self.WINDOW:
            self._accepted.popleft()
        rate = len(self._accepted)
        extra = 0 if rate <= self.calm else math.ceil(math.log2(rate / self.calm))
        return min(MAX_DIFFICULTY, self.base + min(extra, self.MAX_RISE))

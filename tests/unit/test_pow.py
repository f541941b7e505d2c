"""The proof of work a submission pays: issued and checked by intake, solved by the client."""

from __future__ import annotations

import pytest

from hotline.shared.pow import (
    BadChallenge,
    DifficultyGauge,
    StaleChallenge,
    WrongSolution,
    check_solution,
    leading_zero_bits,
    new_challenge,
    pow_digest,
    solve,
)

KEY = b"k" * 32
NOW = 1_800_000_000.0


def test_a_solved_challenge_checks_out_and_names_its_difficulty() -> None:
    challenge = new_challenge(KEY, 8, NOW)
    solution = solve(challenge, 8)
    assert leading_zero_bits(pow_digest(challenge, solution)) >= 8
    assert check_solution(KEY, challenge, solution, NOW).difficulty == 8


def test_leading_zero_bits_counts_from_the_high_bit_of_byte_zero() -> None:
    assert leading_zero_bits(b"\x80" + bytes(31)) == 0
    assert leading_zero_bits(b"\x00\x01" + bytes(30)) == 15
    assert leading_zero_bits(bytes(32)) == 256


def test_a_wrong_solution_an_expired_or_forged_challenge_is_refused() -> None:
    challenge = new_challenge(KEY, 12, NOW)
    solution = solve(challenge, 12)
    wrong = next(
        str(n) for n in range(10_000) if leading_zero_bits(pow_digest(challenge, str(n))) < 12
    )
    with pytest.raises(WrongSolution):
        check_solution(KEY, challenge, wrong, NOW)
    for malformed in ("", "01", "1e3", "-1", "9" * 21):
        with pytest.raises(WrongSolution):
            check_solution(KEY, challenge, malformed, NOW)
    with pytest.raises(StaleChallenge):
        check_solution(KEY, challenge, solution, NOW + 11 * 60)
    with pytest.raises(BadChallenge):
        check_solution(b"other key" * 4, challenge, solution, NOW)
    easier = challenge.replace(".12.", ".0.")
    with pytest.raises(BadChallenge):  # lowering the difficulty breaks the signature
        check_solution(KEY, easier, "0", NOW)
    for junk in ("", "v1", "v2.a.1.1.x", "x" * 500):
        with pytest.raises(BadChallenge):
            check_solution(KEY, junk, "0", NOW)


def test_difficulty_rises_one_bit_per_doubling_of_the_rate_and_falls_back() -> None:
    gauge = DifficultyGauge(base=16, calm_per_minute=30)
    assert gauge.difficulty(0.0) == 16
    for i in range(120):
        gauge.accepted(i * 0.1)
    assert gauge.difficulty(12.0) == 18  # 120 a minute is four times calm
    assert gauge.difficulty(200.0) == 16  # a quiet minute later
    for i in range(100_000):
        gauge.accepted(300.0 + i * 0.0001)
    assert gauge.difficulty(310.0) == 16 + DifficultyGauge.MAX_RISE  # a flood: bounded

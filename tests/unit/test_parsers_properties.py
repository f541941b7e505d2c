"""Properties of every parser of what crosses a boundary (issue 20, fuzzing): envelopes,
signed notes, checkpoints and cosignatures, tile paths and entry bundles, receipts, events,
proof-of-work challenges, and the base64 and key ids inside them.

For each: arbitrary input (text, bytes, JSON values, and near misses made by changing one
field of a valid value) raises nothing but the parser's own documented error, and where
there is an encoder, encoding then parsing gives back what was encoded.

Bounded: a fixed number of examples per property, derandomized, so the file runs in seconds
and the same inputs run every time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hotline.shared.envelope import (
    MAX_PLAINTEXT_BYTES,
    Envelope,
    EnvelopeError,
    envelope_hash,
    open_envelope,
    seal_envelope,
    validate_envelope_shape,
)
from hotline.shared.events import (
    DATA_MODELS,
    EVENT_TYPES,
    Event,
    EventError,
    new_event,
    parse_event,
)
from hotline.shared.keys import (
    KeyFormatError,
    b64decode_strict,
    b64encode,
    check_key_id,
    generate_keypair,
    key_id,
)
from hotline.shared.pow import ChallengeError, check_solution, new_challenge, solve
from hotline.shared.receipt import (
    RECEIPT_DIGITS,
    ReceiptError,
    damm_check_digit,
    format_receipt,
    normalise_receipt,
)
from hotline.shared.tlog.checkpoint import (
    MAX_SIZE,
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
)
from hotline.shared.tlog.errors import (
    CheckpointError,
    MalformedKeyError,
    NoteError,
    TileError,
    TlogError,
)
from hotline.shared.tlog.note import (
    MAX_TIMESTAMP,
    Cosigner,
    Ed25519Signer,
    NoteSignature,
    cosignature_timestamp,
    format_note,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from hotline.shared.tlog.tiles import (
    MAX_TILE_INDEX,
    MAX_TILE_LEVEL,
    TILE_WIDTH,
    EntryBundle,
    Tile,
    decode_bundle,
    encode_bundle,
    entries_path,
    format_tile_index,
    parse_path,
    parse_tile_index,
    tile_path,
)

pytestmark = pytest.mark.unit

FEW = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MANY = settings(FEW, max_examples=200)  # the cheap, pure-text parsers

# --- inputs -----------------------------------------------------------------------------

# Text of every kind, lone surrogates included (JSON can carry them, as `\ud800`).
any_text = st.text(st.characters(codec=None), max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
# base64 of arbitrary bytes, and strings that look like base64 but are not canonical.
base64_texts = st.binary(max_size=120).map(b64encode) | st.from_regex(
    r"[A-Za-z0-9+/=\s\-_]{0,100}", fullmatch=True
)

OPERATOR_PRIVATE, OPERATOR_PUBLIC = generate_keypair()
OPERATOR_ID = key_id(OPERATOR_PUBLIC)
ROUTING = {"factory": "F-001", "categories": ["wages"], "urgent": False}
LOG_SIGNER = Ed25519Signer.generate("log.example/hotline")
WITNESS = Cosigner.generate("witness.example")


def sealed(plaintext: bytes = b"the fire exit is locked", case_id: str = "case-1") -> Envelope:
    return seal_envelope(
        plaintext,
        case_id=case_id,
        kind="content",
        routing=ROUTING,
        recipients={OPERATOR_ID: OPERATOR_PUBLIC},
    )


VALID_ENVELOPE: dict[str, Any] = sealed().model_dump()


@st.composite
def near_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid envelope's JSON with one field changed, removed or added."""
    envelope = dict(VALID_ENVELOPE)
    field = draw(st.sampled_from([*envelope, "extra"]))
    action = draw(st.sampled_from(["replace", "remove", "base64"]))
    if action == "remove":
        envelope.pop(field, None)
    elif action == "base64":
        envelope[field] = draw(base64_texts)
    else:
        envelope[field] = draw(json_values)
    return envelope


# --- envelopes --------------------------------------------------------------------------


@MANY
@given(envelope=json_values | near_envelopes())
@example(envelope={**VALID_ENVELOPE, "case_id": "\ud800"})
@example(envelope={**VALID_ENVELOPE, "version": True})
@example(envelope={**VALID_ENVELOPE, "recipients": {OPERATOR_ID: "\ud800"}})
def test_an_envelope_shape_check_raises_only_envelope_errors(envelope: Any) -> None:
    try:
        validate_envelope_shape(envelope)
    except EnvelopeError:
        return
    assert Envelope.model_validate(envelope).model_dump() == envelope


@MANY
@given(envelope=json_values | near_envelopes())
def test_the_envelope_model_refuses_with_a_validation_error_only(envelope: Any) -> None:
    try:
        Envelope.model_validate(envelope)
    except ValidationError:
        pass


@FEW
@given(raw=st.binary(max_size=400) | near_envelopes().map(lambda e: json.dumps(e).encode()))
def test_envelope_json_from_the_wire_is_a_validation_error_or_an_envelope(raw: bytes) -> None:
    try:
        Envelope.model_validate_json(raw)
    except ValidationError:
        pass


@FEW
@given(envelope=near_envelopes(), case_id=st.sampled_from(["case-1", "case-2"]))
def test_opening_a_damaged_envelope_raises_only_envelope_errors(
    envelope: dict[str, Any], case_id: str
) -> None:
    try:
        plaintext = open_envelope(
            envelope, private_key=OPERATOR_PRIVATE, case_id=case_id, routing=ROUTING
        )
    except EnvelopeError:
        return
    # Only an unchanged envelope of its own case opens.
    assert (envelope, case_id, plaintext) == (VALID_ENVELOPE, "case-1", b"the fire exit is locked")


@FEW
@given(
    plaintext=st.binary(max_size=3000) | st.just(b"x" * MAX_PLAINTEXT_BYTES),
    case_id=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1)
    .filter(str.isprintable)
    .map(lambda text: text[:128]),
)
def test_a_sealed_envelope_opens_to_its_plaintext_and_survives_json(
    plaintext: bytes, case_id: str
) -> None:
    envelope = sealed(plaintext, case_id)
    wire = envelope.model_dump_json()
    again = Envelope.model_validate_json(wire)
    assert again == envelope
    assert envelope_hash(json.loads(wire)) == envelope_hash(envelope)
    opened = open_envelope(again, private_key=OPERATOR_PRIVATE, case_id=case_id, routing=ROUTING)
    assert opened == plaintext


# --- base64 and key ids -----------------------------------------------------------------


@MANY
@given(text=any_text | base64_texts)
@example(text="AA==\n")
@example(text="AB==")  # non-zero trailing bits: not canonical
def test_strict_base64_raises_only_key_format_errors(text: str) -> None:
    try:
        data = b64decode_strict(text)
    except KeyFormatError:
        return
    assert b64encode(data) == text


@MANY
@given(data=st.binary(max_size=200))
def test_base64_round_trips(data: bytes) -> None:
    assert b64decode_strict(b64encode(data)) == data


@MANY
@given(text=json_values | st.from_regex(r"x25519:[0-9a-fA-F]{60,66}\n?", fullmatch=True))
@example(text=OPERATOR_ID + "\n")
def test_a_key_id_check_raises_only_key_format_errors(text: Any) -> None:
    try:
        assert check_key_id(text) == text
    except KeyFormatError:
        pass


# --- signed notes, checkpoints, cosignatures ---------------------------------------------

note_texts = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=40))
NOTE = sign_note("log.example/hotline\n7\n" + b64encode(b"\1" * 32) + "\n", [LOG_SIGNER])


@st.composite
def near_notes(draw: st.DrawFn) -> str:
    """A signed note with a slice of it replaced by arbitrary text."""
    start = draw(st.integers(0, len(NOTE)))
    end = draw(st.integers(start, len(NOTE)))
    return NOTE[:start] + draw(any_text) + NOTE[end:]


@MANY
@given(message=any_text | st.binary(max_size=300) | near_notes())
@example(message="text\n\n\u2014 name AAAA\n")
@example(message=b"text\n\n\xe2\x80\x94 \xff\n")
def test_parsing_a_note_raises_only_note_errors(message: str | bytes) -> None:
    try:
        text, signatures = parse_note(message)
    except NoteError:
        return
    assert parse_note(format_note(text, signatures)) == (text, signatures)


@MANY
@given(message=any_text | st.binary(max_size=300) | near_notes())
def test_opening_a_note_raises_only_note_errors(message: str | bytes) -> None:
    try:
        note = open_note(message, [LOG_SIGNER.verifier()])
    except NoteError:
        return
    assert note.signatures[0].name == LOG_SIGNER.name


@FEW
@given(lines=note_texts.filter(lambda lines: "".join(lines).isprintable()))
def test_a_signed_note_opens_to_its_text(lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines) or "\n"
    try:
        signed = sign_note(text, [LOG_SIGNER])
    except NoteError:  # a text the format cannot carry is refused when signing, too
        return
    assert open_note(signed, [LOG_SIGNER.verifier()]).text == text


@MANY
@given(text=any_text | near_notes().map(lambda note: note.split("\n\n")[0] + "\n"))
@example(text="origin\n099\n" + b64encode(b"\0" * 32) + "\n")
@example(text="origin\n" + str(MAX_SIZE + 1) + "\n" + b64encode(b"\0" * 32) + "\n")
@example(text="origin\n1\n" + b64encode(b"\0" * 32) + "\n\n")
def test_parsing_a_checkpoint_raises_only_checkpoint_errors(text: str) -> None:
    try:
        checkpoint = parse_checkpoint(text)
    except CheckpointError:
        return
    assert format_checkpoint(checkpoint) == text


@MANY
@given(message=any_text | st.binary(max_size=300) | near_notes())
def test_opening_a_checkpoint_raises_only_tlog_errors(message: str | bytes) -> None:
    try:
        checkpoint, _ = open_checkpoint(message, LOG_SIGNER.name, [LOG_SIGNER.verifier()])
    except TlogError:
        return
    assert checkpoint.origin == LOG_SIGNER.name


checkpoints = st.builds(
    Checkpoint,
    origin=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1),
    size=st.integers(0, MAX_SIZE),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1),
        max_size=3,
    ).map(tuple),
)


@FEW
@given(checkpoint=checkpoints, timestamp=st.integers(0, MAX_TIMESTAMP))
def test_a_checkpoint_round_trips_and_a_cosignature_keeps_its_time(
    checkpoint: Checkpoint, timestamp: int
) -> None:
    text = format_checkpoint(checkpoint)
    assert parse_checkpoint(text) == checkpoint
    cosignature = WITNESS.cosign(text, timestamp)
    signed = format_note(text, [log_signature(text), cosignature])
    opened, note = open_checkpoint(signed, checkpoint.origin, [WITNESS.verifier()])
    assert opened == checkpoint
    assert [cosignature_timestamp(s) for s in note.signatures] == [timestamp]


def log_signature(text: str) -> NoteSignature:
    return parse_note(sign_note(text, [LOG_SIGNER]))[1][0]


@MANY
@given(name=any_text, key_id_value=st.integers(0, 2**32 - 1), signature=st.binary(max_size=100))
def test_a_cosignature_timestamp_is_read_or_refused_as_malformed(
    name: str, key_id_value: int, signature: bytes
) -> None:
    try:
        timestamp = cosignature_timestamp(NoteSignature(name, key_id_value, signature))
    except NoteError:
        return
    assert 0 <= timestamp < 2**64


@MANY
@given(
    key=any_text
    | near_notes()
    | st.just(LOG_SIGNER.verifier().vkey()).flatmap(
        lambda vkey: st.integers(0, len(vkey)).map(lambda cut: vkey[:cut] + "+" + vkey[cut:])
    )
)
@example(key=LOG_SIGNER.verifier().vkey())
@example(key=WITNESS.verifier().vkey())
def test_a_verifier_key_parses_back_to_itself_or_is_malformed(key: str) -> None:
    try:
        verifier = parse_verifier_key(key)
    except MalformedKeyError:
        return
    assert verifier.vkey() == key


@MANY
@given(key=any_text | st.just(LOG_SIGNER.skey()).map(lambda s: s[:-4] + "AAA="))
@example(key=LOG_SIGNER.skey())
@example(key=WITNESS.skey())
def test_a_signer_key_parses_back_to_itself_or_is_malformed(key: str) -> None:
    try:
        signer = parse_signer_key(key)
    except MalformedKeyError:
        return
    assert signer.skey() == key


# --- tiles and entry bundles ------------------------------------------------------------

tiles = st.builds(
    Tile,
    level=st.integers(0, MAX_TILE_LEVEL),
    index=st.integers(0, MAX_TILE_INDEX),
    width=st.integers(1, TILE_WIDTH),
)
bundles = st.builds(
    EntryBundle, index=st.integers(0, MAX_TILE_INDEX), width=st.integers(1, TILE_WIDTH)
)
path_texts = st.lists(
    st.sampled_from(["tile", "entries", "x001", "x000", "000", "067", "0", "1", "63", ".p", "255"])
    | st.from_regex(r"x?[0-9]{1,4}(\.p)?", fullmatch=True)
    | any_text,
    max_size=8,
).map("/".join)


@MANY
@given(path=path_texts | any_text)
@example(path="tile/0/x001/000")  # leading zero group: not canonical
@example(path="tile/entries/000.p/256")
@example(path="tile/64/000")
@example(path="tile/0/x" + "999/x" * 30 + "999")
def test_parsing_a_tile_path_raises_only_tile_errors(path: str) -> None:
    try:
        resource = parse_path(path)
    except TileError:
        return
    assert (
        entries_path(resource) if isinstance(resource, EntryBundle) else tile_path(resource)
    ) == path


@MANY
@given(tile=tiles, bundle=bundles)
def test_tile_and_bundle_paths_round_trip(tile: Tile, bundle: EntryBundle) -> None:
    assert parse_path(tile_path(tile)) == tile
    assert parse_path(entries_path(bundle)) == bundle
    assert parse_tile_index(format_tile_index(tile.index)) == tile.index


@MANY
@given(data=st.binary(max_size=600), width=st.integers(1, TILE_WIDTH))  # a width of a path
def test_decoding_a_bundle_raises_only_tile_errors(data: bytes, width: int) -> None:
    try:
        entries = decode_bundle(data, width)
    except TileError:
        return
    assert encode_bundle(entries) == data


@FEW
@given(entries=st.lists(st.binary(max_size=300), min_size=1, max_size=TILE_WIDTH))
def test_a_bundle_round_trips(entries: list[bytes]) -> None:
    assert decode_bundle(encode_bundle(entries), len(entries)) == entries


# --- receipts ---------------------------------------------------------------------------

receipt_bodies = st.text("0123456789", min_size=RECEIPT_DIGITS - 1, max_size=RECEIPT_DIGITS - 1)
# Digits of other scripts, which a worker's keyboard may type.
any_digits = st.characters(categories=["Nd"]) | st.sampled_from(" -\u2010\u2013\u00a0\t")


@MANY
@given(text=any_text | st.text(any_digits, min_size=30, max_size=60) | json_values)
@example(text="٠" * 40)
@example(text="1" * 40 + "\ud800")
def test_normalising_a_receipt_raises_only_receipt_errors(text: Any) -> None:
    try:
        canonical = normalise_receipt(text)
    except ReceiptError:
        return
    assert normalise_receipt(canonical) == canonical
    assert len(canonical) == RECEIPT_DIGITS and canonical.isascii()


@MANY
@given(body=receipt_bodies)
def test_a_receipt_survives_formatting_and_any_script(body: str) -> None:
    receipt = body + str(damm_check_digit(body))
    shown = format_receipt(receipt)
    assert normalise_receipt(shown) == receipt
    fullwidth = shown.translate({ord(d): ord(d) - ord("0") + 0xFF10 for d in "0123456789"})
    assert normalise_receipt(fullwidth) == receipt


# --- events -----------------------------------------------------------------------------

# Envelopes inside event data are real ones (their shape is checked on construction).
st.register_type_strategy(
    Envelope,
    st.builds(sealed, plaintext=st.binary(max_size=200), case_id=st.just("case-1")),
)
event_data = st.sampled_from(sorted(DATA_MODELS.items())).flatmap(lambda item: st.builds(item[1]))


@st.composite
def near_events(draw: st.DrawFn) -> bytes:
    event = json.loads(new_event("case-1", draw(event_data)).to_bytes())
    field = draw(st.sampled_from([*event, "extra"]))
    event[field] = draw(json_values | st.sampled_from(sorted(EVENT_TYPES)))
    return json.dumps(event).encode()


@FEW
@given(
    raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | near_events()
)
@example(raw=b'{"id":"1","type":"report.submitted","subject":"c","data":{"x":NaN}}')
@example(raw=b'{"id":"\\ud800","type":"key.revoked","subject":"c","data":{}}')
def test_parsing_an_event_raises_only_event_errors(raw: bytes) -> None:
    try:
        event = parse_event(raw)
    except EventError:
        return
    assert parse_event(event.to_bytes()) == event


@FEW
@given(data=event_data, subject=st.text(max_size=60))
def test_every_event_type_round_trips_through_its_bytes(data: Any, subject: str) -> None:
    event: Event = new_event(subject, data)
    assert parse_event(event.to_bytes()) == event


# --- proof of work ----------------------------------------------------------------------

CHALLENGE_KEY = b"k" * 32
NOW = 1_800_000_000.0
# Five dot-separated parts starting with v1: the shape check passes and the MAC is reached.
shaped_challenges = st.lists(any_text, min_size=4, max_size=4).map(lambda p: ".".join(["v1", *p]))


@MANY
@given(challenge=any_text | shaped_challenges | json_values, solution=any_text | json_values)
@example(challenge="v1.a.b.c.\u00e9", solution="1")  # found here: a 500 from compare_digest
@example(challenge="v1.\u00e9.b.c.d", solution="1")  # and from the MAC's ASCII encoding
@example(challenge="v1.a.b.c.\ud800", solution="1")
def test_checking_a_solution_raises_only_challenge_errors(challenge: Any, solution: Any) -> None:
    try:
        check_solution(CHALLENGE_KEY, challenge, solution, NOW)
    except ChallengeError:
        return
    raise AssertionError("an arbitrary challenge was accepted")


@FEW
@given(difficulty=st.integers(0, 6), solution=any_text)
def test_a_solved_challenge_checks_out_and_a_wrong_solution_does_not(
    difficulty: int, solution: str
) -> None:
    challenge = new_challenge(CHALLENGE_KEY, difficulty, NOW)
    answer = solve(challenge, difficulty)
    assert check_solution(CHALLENGE_KEY, challenge, answer, NOW).difficulty == difficulty
    try:
        check_solution(CHALLENGE_KEY, challenge, solution, NOW)
    except ChallengeError:
        return
    assert solution.isascii() and solution.isdigit()  # another counter may solve it too

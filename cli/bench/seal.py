"""`hotline bench seal`: what sealing one report costs, beside raw PyNaCl doing the same
primitives in the same run.

A report is what `hotline submit` seals: a content envelope to `--content-recipients` keys
(the operator's and the linked buyers') and an identity envelope to one operator key, both
`shared/envelope.py` `seal_envelope` (padding bucket, RFC 8785 associated data, key id
checks, the Envelope model). The anchor does only the primitives of the same two envelopes:
random data keys and nonces, libsodium padding, XChaCha20-Poly1305 and one sealed box per
recipient, with the same plaintexts and associated data. The ratio is the seal's time over
the anchor's (lower is better; 1.0 would be no cost above the cryptography).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import click
import nacl.bindings
import nacl.public
import nacl.utils

from hotline.shared.envelope import EnvelopeKind, associated_data, padded_size, seal_envelope
from hotline.shared.keys import generate_keypair, key_id
from hotline.shared.reports import routing_metadata

from .figures import JSON_OPTION, Figure, echo_figure

TEXT = ("The fire exit on floor 3 is locked every night. " * 20).encode()
IDENTITY = b"Zhang Wei, line 2, +86 138 0000 0000"


def _median_seconds(runs: list[Callable[[], object]], rounds: int) -> list[float]:
    """The median seconds of each of `runs`, taken in turn round after round, so that a
    machine whose speed drifts during the run slows each of them alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, taken in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            taken.append(time.perf_counter() - start)
    return [statistics.median(taken) for taken in times]


@click.command("seal")
@click.option(
    "--content-recipients",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Keys the content is sealed to (the identity goes to one operator key).",
)
@click.option("--rounds", type=click.IntRange(10), default=2000, show_default=True)
@JSON_OPTION
def bench_seal(content_recipients: int, rounds: int, as_json: bool) -> None:
    """Seal one report (content and identity envelopes) as the CLI and the no-JS form do,
    beside raw PyNaCl doing the same primitives in the same run."""
    keys = {}
    for _ in range(content_recipients):
        public = generate_keypair()[1]
        keys[key_id(public)] = public
    operator = dict(list(keys.items())[:1])
    case_id = str(uuid.uuid4())
    routing = routing_metadata("F-001", ["safety"], True, "en")

    def seal() -> None:
        seal_envelope(TEXT, case_id=case_id, kind="content", routing=routing, recipients=keys)
        seal_envelope(
            IDENTITY, case_id=case_id, kind="identity", routing=routing, recipients=operator
        )

    # The anchor's inputs are made once: what it times is the primitives alone.
    plans = []
    envelopes: list[tuple[bytes, EnvelopeKind, dict[str, bytes]]] = [
        (TEXT, "content", keys),
        (IDENTITY, "identity", operator),
    ]
    for plaintext, kind, recipients in envelopes:
        aad = associated_data(
            kind=kind, case_id=case_id, routing=routing, recipient_ids=sorted(recipients)
        )
        boxes = [nacl.public.SealedBox(nacl.public.PublicKey(k)) for k in recipients.values()]
        plans.append((plaintext, padded_size(len(plaintext), kind), aad, boxes))

    def raw() -> None:
        for plaintext, size, aad, boxes in plans:
            data_key = nacl.utils.random(32)
            nonce = nacl.utils.random(24)
            padded = nacl.bindings.sodium_pad(plaintext, size)
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(padded, aad, nonce, data_key)
            for box in boxes:
                box.encrypt(data_key)

    seal()  # warm up both (imports, first allocations)
    raw()
    sealed, anchor = _median_seconds([seal, raw], rounds)
    figure = Figure(
        figure=f"seal one report ({content_recipients} content + 1 identity recipients)",
        value=round(sealed * 1e6, 1),
        unit="µs",
        anchor="raw PyNaCl, the same primitives",
        anchor_value=round(anchor * 1e6, 1),
        better="lower",
        extra={"rounds": rounds},
    )
    echo_figure(figure, as_json)

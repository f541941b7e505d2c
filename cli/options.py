"""What several commands share: the `--key` option and reading the private key it names."""

from __future__ import annotations

from pathlib import Path

import click

from hotline.shared.keys import CryptoError, load_private_key

KEY_OPTION = click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your private key file (from `hotline keys generate`).",
)


def private_key(path: Path) -> bytes:
    """The private key in `path`, or a clear CLI error saying what is wrong with the file."""
    try:
        return load_private_key(path)
    except CryptoError as exc:
        raise click.ClickException(str(exc)) from None

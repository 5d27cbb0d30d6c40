"""`imatrix`: collect, inspect, merge, convert, compare, mix, gate and evaluate llama.cpp importance matrices."""

from __future__ import annotations

import click

from calibkit.lazy_group import LazyGroup
from imatrix import __version__

COMMANDS = {
    "collect": "imatrix.commands.collect:collect",
    "inspect": "imatrix.commands.files:inspect",
    "merge": "imatrix.commands.files:merge",
    "convert": "imatrix.commands.files:convert",
    "compare": "imatrix.commands.files:compare",
    "mix": "imatrix.commands.files:mix",
    "eval": "imatrix.commands.eval:eval_command",
    "card": "imatrix.commands.card:card",
    "gate": "imatrix.commands.gate:gate",
    "allocate": "imatrix.commands.allocate:allocate",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imatrix")
def main() -> None:
    """Importance matrices for llama-quantize --imatrix, computed with torch on transformers models."""

"""`logminer`: raw agent transcripts → clean sessions → calibration / validation / eval splits."""

from __future__ import annotations

import click

from calibkit.lazy_group import LazyGroup
from logminer import __version__

COMMANDS = {
    "ingest": "logminer.commands.ingest:ingest",
    "inspect": "logminer.commands.ingest:inspect",
    "validate": "logminer.commands.ingest:validate",
    "split": "logminer.commands.split:split",
    "corpus": "logminer.commands.split:corpus",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="logminer")
def main() -> None:
    """Turn coding-agent and tool-use logs into calibration data for llama.cpp quantization."""

"""Transcript formats: one module per format, each with NAME, sniff() and parse(), registered in FORMATS.

Order matters: the first format whose sniff() accepts a file wins, so specific formats come before generic ones
(plain text is last).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module names under logminer.formats, most specific first; plain text is the catch-all
FORMAT_MODULES: tuple[str, ...] = (
    # agent-specific transcript formats (helper B)
    "swe_agent",
    "mini_swe_agent",
    "openhands",
    "openhands_v1",
    "aider",
    "swebench",
    "bfcl",
    # catch-all: must stay last
    "plain_text",
)


def load_formats() -> list[ModuleType]:
    return [importlib.import_module(f"logminer.formats.{name}") for name in FORMAT_MODULES]

"""Transcript formats: one module per format, registered in FORMAT_MODULES (order matters: first sniff() wins).

Reader contract, for every module named in FORMAT_MODULES:
- `NAME: str`: the format name, written into Session.agent (e.g. "claude-code", "codex", "openai-chat").
- `RECORD_UNIT: str`: what one input record is, for accounting: "line" (JSONL: every non-blank line is one record),
  "item" (each conversation object of a JSON document, or each line of its JSONL variant), "file".
- `sniff(source: SourceFile) -> bool`: content-based and cheap (source.head, the first lines); False for binary data
  unless the format is binary (parquet sniffs b"PAR1"); never accepts another registered format's files.
- `parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]`: every record ends in exactly one event, so
  the events' `records` add up to the file's record count. Malformed JSON, unknown shapes and lines longer than
  sources.MAX_LINE_BYTES become Rejected(file, line, precise reason) and parsing goes on. Tool-call arguments go
  through schema.canonical_arguments (invalid JSON kept as text, arguments_valid=False, session flag
  "broken_tool_json"). Session ids are the format's own id when it has one, else a deterministic id from file path
  and line. line_start/line_end/byte_start/byte_end locate the session in the file.
- optionally `sniff_dir(path)` / `parse_dir(path)` for formats that spread one session over a folder (see detect.py).
Shared mappings (OpenAI messages, Anthropic blocks, Responses items) live in `common`, JSON helpers in `jsondoc`.
Specific formats come before generic ones; plain text is last.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module names under logminer.formats, most specific first; plain text is the catch-all
FORMAT_MODULES: tuple[str, ...] = (
    # Qwen Code records share sessionId/uuid/parentUuid with Claude Code's: qwen_code (helper B) must sniff first
    "qwen_code",
    # coding-agent session logs (helper A)
    "claude_hooks",
    "claude_code",
    "codex",
    # agent-specific transcript formats (helper B)
    "swe_agent",
    "mini_swe_agent",
    "openhands",
    "openhands_v1",
    "aider",
    "cline",
    "opencode",
    "swebench",
    "bfcl",
    # generic API / dataset formats (helper A): after the agent formats, whose files also hold `messages`
    "llm_logs",
    "openai_responses",
    "anthropic_messages",
    "sharegpt",
    "openai_chat",
    # catch-all: must stay last
    "plain_text",
)


def load_formats() -> list[ModuleType]:
    return [importlib.import_module(f"logminer.formats.{name}") for name in FORMAT_MODULES]

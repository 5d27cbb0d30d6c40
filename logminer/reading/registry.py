"""The format table: every transcript format is one `Format` entry, declared at the end of its module in formats/.

A format module ends with `FORMAT = Format(...)`; FORMAT_MODULES below lists the modules in sniffing priority
(specific formats first: the first whose `sniff` accepts a file reads it; plain text is the catch-all and last).

Reader contract:
- `name`: written into Session.agent (e.g. "claude-code", "codex", "openai-chat").
- `record_unit`: what one input record is, for accounting: "line" (JSONL: every non-blank line is one record),
  "item" (each conversation object of a JSON document, or each line of its JSONL variant), "row" (a table
  row of a database), "file".
- `unit`: "file" (sniff + parse), "folder" (sniff_dir + parse_dir: one session spread over a folder; every file
  under a folder it claims is its own), or "database" (a SQLite store: `sniff(database)` / `parse(database)` take
  a read-only sqlite_store.Database snapshot, never the file's bytes; detect routes a file by its SQLite header).
- `sniff(source) -> bool`: content-based and cheap (source.head, several lines, never one fixed line); False for
  binary data unless the format is binary (parquet sniffs b"PAR1"); never accepts another format's files.
- `parse(source) -> Iterator[Session | Skipped | Rejected]`: every record ends in exactly one event, so the events'
  `records` add up to the file's record count. Malformed JSON, unknown shapes and over-long lines become
  Rejected(file, line, precise reason) and parsing goes on. Tool-call arguments go through
  schema.canonical_arguments. Session ids are the format's own id when it has one, else a deterministic id.
- `sources`: the `--source NAME` entries whose default folders (per OS, environment overrides first) hold this
  format's logs.
Shared mappings (OpenAI messages, Anthropic blocks, Responses items) live in formats/common.py, JSON helpers in
formats/jsondoc.py.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FolderFinder = Callable[[Path, Mapping[str, str], str], list[Path]]  # (home, environment, sys.platform) → folders


@dataclass(frozen=True)
class AgentSource:
    """`--source NAME`: where one agent keeps its logs; `folders` lists every candidate, most likely first."""

    name: str
    folders: FolderFinder


@dataclass(frozen=True)
class Format:
    name: str
    record_unit: str
    unit: str = "file"  # "file" | "folder" | "database"
    sniff: Callable | None = None
    parse: Callable[..., Iterator] | None = None
    sniff_dir: Callable[[str], bool] | None = None
    parse_dir: Callable[[str], Iterator] | None = None
    sources: tuple[AgentSource, ...] = ()

    def __post_init__(self) -> None:
        if self.unit == "folder":
            assert self.sniff_dir is not None and self.parse_dir is not None, f"{self.name}: folder format"
        else:
            assert self.sniff is not None and self.parse is not None, f"{self.name}: {self.unit} format"


# module names under logminer.reading.formats, most specific first; plain text is the catch-all
FORMAT_MODULES: tuple[str, ...] = (
    # session headers of their own (`type: session`; `sessionId` + `projectHash`): before the uuid-chain formats
    "pi",
    "gemini_cli",
    # Qwen Code records share sessionId/uuid/parentUuid with Claude Code's: qwen_code must sniff first
    "qwen_code",
    # coding-agent session logs
    "claude_hooks",
    "claude_code",
    "codex",
    # agents' own stores and CLIs (issue 11): SQLite databases are only offered SQLite files (detect checks the header)
    "opencode_db",
    "openclaw_db",
    "agent_indexes",
    "crush",
    "cursor",
    "goose",
    "goose_legacy",
    "copilot_cli",
    "kimi_code",
    "antigravity",
    "continue_dev",
    "cline_cli",
    "grok",
    # agent-specific transcript formats
    "swe_agent",
    "mini_swe_agent",
    "openhands",
    "openhands_v1",
    "aider",
    "cline",
    "opencode",
    "swebench",
    "bfcl",
    # generic API / dataset formats: after the agent formats, whose files also hold `messages`
    "llm_logs",
    "openai_responses",
    "anthropic_messages",
    "sharegpt",
    "openai_chat",
    # catch-all: must stay last
    "plain_text",
)


@cache
def load_formats() -> tuple[Format, ...]:
    return tuple(importlib.import_module(f"logminer.reading.formats.{name}").FORMAT for name in FORMAT_MODULES)


class AgentSourceError(Exception):
    """No log folder of the requested agent exists on this machine (or the name is unknown)."""


def agent_sources() -> dict[str, AgentSource]:
    """Every `--source` name, alphabetically (the order of --help and of `--source all`)."""
    sources = {source.name: source for fmt in load_formats() for source in fmt.sources}
    return dict(sorted(sources.items()))


def source_names() -> tuple[str, ...]:
    return (*agent_sources(), "all")


def source_help() -> str:
    """Where each `--source` looks, from its folder finder's docstring ("--source NAME: where ..."), one line each."""
    lines = []
    for name, source in agent_sources().items():
        text = " ".join((source.folders.__doc__ or "").split())
        lines.append(f"  {name}: {text.removeprefix(f'--source {name}: ')}")
    return "\n".join(lines)


def default_folders(agent: str, *, home: Path | None = None, env: Mapping[str, str] | None = None,
                    platform: str | None = None) -> list[Path]:
    """Every folder where `agent` may keep logs on this system (existing or not), most likely first."""
    sources = agent_sources()
    if agent not in sources:
        raise AgentSourceError(f"unknown agent {agent!r}; choose one of {', '.join(source_names())}")
    return sources[agent].folders(Path(home) if home is not None else Path.home(),
                                  os.environ if env is None else env, platform or sys.platform)


def source_folders(source: str, *, home: Path | None = None, env: Mapping[str, str] | None = None,
                   platform: str | None = None) -> list[str]:
    """The existing log folders (or database files) of `source` (an agent or "all"); an error naming every place
    looked if none exist."""
    agents = tuple(agent_sources()) if source == "all" else (source,)
    candidates = [f for agent in agents for f in default_folders(agent, home=home, env=env, platform=platform)]
    found = [str(folder) for folder in candidates if folder.exists()]
    if not found:
        looked = "\n  ".join(str(c) for c in candidates)
        raise AgentSourceError(f"no log folder of {source!r} found; looked in:\n  {looked}\nuse --input to name one")
    return found


def editor_user_folders(home: Path, env: Mapping[str, str], platform: str, editors: tuple[str, ...]) -> list[Path]:
    """VS Code-style editors' user folders: ~/Library/Application Support/<Editor> (macOS), %APPDATA%\\<Editor>
    (Windows), $XDG_CONFIG_HOME or ~/.config/<Editor> (Linux)."""
    if platform == "darwin":
        base = home / "Library" / "Application Support"
    elif platform.startswith("win"):
        base = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return [base / editor for editor in editors]

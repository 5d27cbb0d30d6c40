"""Where each coding agent keeps its logs on this machine, for `--source claude|codex|cline|opencode|qwen|all`.

Locations (from the agents' public sources and docs; environment overrides first):
  claude    $CLAUDE_CONFIG_DIR/projects, else ~/.claude/projects (all systems)
  codex     $CODEX_HOME/sessions, else ~/.codex/sessions (all systems)
  cline     <editor user folder>/User/globalStorage/saoudrizwan.claude-dev/tasks, for VS Code, VS Code Insiders,
            VSCodium, Cursor and Windsurf; the editor user folder is ~/Library/Application Support/<Editor> (macOS),
            %APPDATA%\\<Editor> (Windows), $XDG_CONFIG_HOME or ~/.config/<Editor> (Linux)
  opencode  $XDG_DATA_HOME/opencode/storage, else ~/.local/share/opencode/storage (OpenCode uses XDG folders on
            every system)
  qwen      ~/.qwen/projects (JSONL chat recordings) and ~/.qwen/tmp (older per-project chat files)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

AGENTS = ("claude", "codex", "cline", "opencode", "qwen")
SOURCES = (*AGENTS, "all")
CLINE_EDITORS = ("Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf")
CLINE_TASKS = ("User", "globalStorage", "saoudrizwan.claude-dev", "tasks")


class AgentSourceError(Exception):
    """No log folder of the requested agent exists on this machine."""


def _editor_roots(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    if platform == "darwin":
        base = home / "Library" / "Application Support"
    elif platform.startswith("win"):
        base = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return [base / editor for editor in CLINE_EDITORS]


def default_folders(agent: str, *, home: Path | None = None, env: Mapping[str, str] | None = None,
                    platform: str | None = None) -> list[Path]:
    """Every folder where `agent` may keep logs on this system (existing or not), most likely first."""
    home = Path(home) if home is not None else Path.home()
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if agent == "claude":
        return [Path(env["CLAUDE_CONFIG_DIR"]) / "projects" if env.get("CLAUDE_CONFIG_DIR")
                else home / ".claude" / "projects"]
    if agent == "codex":
        return [Path(env["CODEX_HOME"]) / "sessions" if env.get("CODEX_HOME") else home / ".codex" / "sessions"]
    if agent == "cline":
        return [root.joinpath(*CLINE_TASKS) for root in _editor_roots(home, env, platform)]
    if agent == "opencode":
        data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        return [data / "opencode" / "storage"]
    if agent == "qwen":
        return [home / ".qwen" / "projects", home / ".qwen" / "tmp"]
    raise AgentSourceError(f"unknown agent {agent!r}; choose one of {', '.join(SOURCES)}")


def source_folders(source: str, *, home: Path | None = None, env: Mapping[str, str] | None = None,
                   platform: str | None = None) -> list[str]:
    """The existing log folders of `source` (an agent or "all"); an error naming every place looked if none exist."""
    agents = AGENTS if source == "all" else (source,)
    candidates = [f for agent in agents for f in default_folders(agent, home=home, env=env, platform=platform)]
    found = [str(folder) for folder in candidates if folder.is_dir()]
    if not found:
        looked = "\n  ".join(str(c) for c in candidates)
        raise AgentSourceError(f"no log folder of {source!r} found; looked in:\n  {looked}\nuse --input to name one")
    return found

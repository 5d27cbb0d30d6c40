"""Default agent log folders per system, environment overrides, and the error when none exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from logminer.reading.registry import AgentSourceError, default_folders, source_folders

HOME = Path("/h")


def test_linux_defaults():
    env: dict[str, str] = {}
    assert default_folders("claude", home=HOME, env=env, platform="linux") == [HOME / ".claude/projects"]
    assert default_folders("codex", home=HOME, env=env, platform="linux") == [HOME / ".codex/sessions"]
    assert default_folders("opencode", home=HOME, env=env, platform="linux") == [
        HOME / ".local/share/opencode/opencode.db", HOME / ".local/share/opencode/storage"]
    assert default_folders("qwen", home=HOME, env=env, platform="linux") == [HOME / ".qwen/projects", HOME / ".qwen/tmp"]
    assert default_folders("cline", home=HOME, env=env, platform="linux")[0] == (
        HOME / ".config/Code/User/globalStorage/saoudrizwan.claude-dev/tasks")


def test_macos_windows_and_overrides():
    mac = default_folders("cline", home=HOME, env={}, platform="darwin")[0]
    assert mac == HOME / "Library/Application Support/Code/User/globalStorage/saoudrizwan.claude-dev/tasks"
    win = default_folders("cline", home=HOME, env={"APPDATA": "/appdata"}, platform="win32")[1]
    assert win == Path("/appdata/Code - Insiders/User/globalStorage/saoudrizwan.claude-dev/tasks")
    env = {"CLAUDE_CONFIG_DIR": "/c", "CODEX_HOME": "/x", "XDG_DATA_HOME": "/d"}
    assert default_folders("claude", home=HOME, env=env) == [Path("/c/projects")]
    assert default_folders("codex", home=HOME, env=env) == [Path("/x/sessions")]
    assert default_folders("opencode", home=HOME, env=env) == [Path("/d/opencode/opencode.db"),
                                                                Path("/d/opencode/storage")]


@pytest.mark.parametrize(("agent", "platform", "first"), [
    ("copilot", "linux", ".copilot/session-state"),
    ("copilot", "darwin", ".copilot/session-state"),
    ("kimi", "linux", ".kimi-code/sessions"),
    ("continue", "darwin", ".continue/sessions"),
    ("grok", "linux", ".grok/sessions"),
    ("goose", "linux", ".local/share/goose/sessions"),
    ("goose", "darwin", "Library/Application Support/Block.block.goose/sessions"),
    ("cursor", "linux", ".config/Cursor/User/globalStorage/state.vscdb"),
    ("cursor", "darwin", "Library/Application Support/Cursor/User/globalStorage/state.vscdb"),
    ("roo", "linux", ".config/Code/User/globalStorage/rooveterinaryinc.roo-cline/tasks"),
    ("roo", "darwin", "Library/Application Support/Code/User/globalStorage/rooveterinaryinc.roo-cline/tasks"),
    ("kilo", "linux", ".local/share/kilo/kilo.db"),
])
def test_agent_store_defaults(agent, platform, first):
    assert default_folders(agent, home=HOME, env={}, platform=platform)[0] == HOME / first


def test_cline_cli_kilo_and_cursor_workspaces(tmp_path):
    assert HOME / ".cline/data/sessions" in default_folders("cline", home=HOME, env={}, platform="linux")
    kilo = default_folders("kilo", home=HOME, env={}, platform="darwin")
    assert HOME / "Library/Application Support/Code/User/globalStorage/kilocode.kilo-code/tasks" in kilo
    workspace = tmp_path / ".config/Cursor/User/workspaceStorage/ab12"
    workspace.mkdir(parents=True)
    (workspace / "state.vscdb").write_bytes(b"")
    assert default_folders("cursor", home=tmp_path, env={}, platform="linux")[1] == workspace / "state.vscdb"


def test_source_folders_finds_existing_and_reports_missing(tmp_path):
    (tmp_path / ".codex/sessions").mkdir(parents=True)
    (tmp_path / ".qwen/tmp").mkdir(parents=True)
    assert source_folders("all", home=tmp_path, env={}, platform="linux") == [
        str(tmp_path / ".codex/sessions"), str(tmp_path / ".qwen/tmp")]
    with pytest.raises(AgentSourceError, match=r"(?s)no log folder of 'claude'.*\.claude/projects"):
        source_folders("claude", home=tmp_path, env={}, platform="linux")
    with pytest.raises(AgentSourceError, match="unknown agent"):
        default_folders("vim", home=tmp_path, env={})


def test_ingest_help_lists_every_source_and_its_folders():
    from click.testing import CliRunner

    from logminer.cli import main
    from logminer.reading.registry import source_help, source_names

    text = CliRunner().invoke(main, ["ingest", "--help"]).output
    for name in source_names()[:-1]:
        assert f"  {name}: " in source_help() and f"{name}:" in text, name
    for folder in ("~/.copilot", "~/.kimi-code/sessions", "opencode.db", "Block.block.goose", "state.vscdb"):
        assert folder in text, folder

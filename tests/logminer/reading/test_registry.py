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
        HOME / ".local/share/opencode/storage"]
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
    assert default_folders("opencode", home=HOME, env=env) == [Path("/d/opencode/storage")]


def test_source_folders_finds_existing_and_reports_missing(tmp_path):
    (tmp_path / ".codex/sessions").mkdir(parents=True)
    (tmp_path / ".qwen/tmp").mkdir(parents=True)
    assert source_folders("all", home=tmp_path, env={}, platform="linux") == [
        str(tmp_path / ".codex/sessions"), str(tmp_path / ".qwen/tmp")]
    with pytest.raises(AgentSourceError, match=r"(?s)no log folder of 'claude'.*\.claude/projects"):
        source_folders("claude", home=tmp_path, env={}, platform="linux")
    with pytest.raises(AgentSourceError, match="unknown agent"):
        default_folders("vim", home=tmp_path, env={})

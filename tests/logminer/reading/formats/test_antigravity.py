"""Antigravity CLI step logs (real capture)."""

from __future__ import annotations

import json

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read
from tests.real_components import require_real_logs


def test_real_step_log_matches_hand_counts():
    result = read(require_real_logs() / "antigravity-cli-steps" / "agentsessions_cli_small.jsonl")
    assert result.formats == {"antigravity"} and not result.rejected
    session, = result.sessions
    assert result.roles["user"] == 2 and result.roles["assistant"] == 3 and result.tool_calls == 2
    assert result.records == 19
    assert json.loads(session.turns[1].tool_calls[0].arguments)["DirectoryPath"] == "/tmp/repo"
    assert session.turns[2].tool_call_id == session.turns[1].tool_calls[0].id


def test_planted_secret_never_reaches_output(tmp_path):
    steps = [{"step_index": 0, "source": "USER_EXPLICIT", "type": "USER_INPUT", "status": "DONE", "content": SECRET_TEXT},
             {"step_index": 1, "source": "MODEL", "type": "PLANNER_RESPONSE", "status": "DONE", "content": "ok",
              "tool_calls": [{"name": "run_command", "args": {"CommandLine": json.dumps(SECRET_TEXT)}}]},
             {"step_index": 2, "source": "MODEL", "type": "RUN_COMMAND", "status": "DONE", "content": SECRET_TEXT}]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "steps.jsonl").write_text("\n".join(json.dumps(s) for s in steps) + "\n")
    assert_secret_never_output(tmp_path / "in", tmp_path / "out")

"""`imatrix eval` command: -m/--model names the reference (old --reference still parses), -f/--text the text, and
the options reach agent_eval.run_agent_eval unchanged; evaluation errors become one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from imatrix.cli import main
from imatrix.commands.eval import eval_command
from imatrix.llamacpp import agent_eval, evaluate


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("ref.gguf", "q1.gguf", "q2.gguf", "eval.txt")}
    for path in paths.values():
        path.write_bytes(b"x")
    return paths


def test_reference_spellings_parse_alike(files):
    tail = [str(files["q1.gguf"]), "-f", str(files["eval.txt"])]
    params = [eval_command.make_context("eval", [flag, str(files["ref.gguf"]), *tail]).params
              for flag in ("-m", "--model", "--reference")]
    assert params[0] == params[1] == params[2]
    assert params[0]["reference"] == files["ref.gguf"] and params[0]["quants"] == (files["q1.gguf"],)
    help_text = CliRunner().invoke(main, ["eval", "--help"]).output
    assert "-m, --model FILE" in help_text and "-f, --text FILE" in help_text and "--reference" not in help_text


def test_options_reach_run_agent_eval_and_errors_are_one_message(files, monkeypatch, tmp_path):
    seen = {}

    def fake_run_agent_eval(reference, quants, data, options, tokens_out=None, progress=None):
        seen.update(reference=reference, quants=quants, data=data, options=options, tokens_out=tokens_out)
        raise evaluate.EvalError(f"{reference}: cannot score (test)")

    monkeypatch.setattr(agent_eval, "run_agent_eval", fake_run_agent_eval)
    result = CliRunner().invoke(main, ["eval", "-m", str(files["ref.gguf"]), str(files["q1.gguf"]),
                                       str(files["q2.gguf"]), "-f", str(files["eval.txt"]), "-c", "128",
                                       "--chunks", "3", "-t", "2", "--tool-calls", "4", "--bootstrap", "20",
                                       "--seed", "9", "--stride", "64", "-o", str(tmp_path / "run")])
    assert result.exit_code == 1 and "ref.gguf: cannot score (test)" in result.output
    assert "Traceback" not in result.output
    assert seen["reference"] == files["ref.gguf"] and seen["quants"] == (files["q1.gguf"], files["q2.gguf"])
    assert seen["data"] == files["eval.txt"] and seen["tokens_out"] == tmp_path / "run.tokens.parquet"
    assert seen["options"] == agent_eval.AgentEvalOptions(ctx_size=128, stride=64, max_windows=3, threads=2,
                                                          tool_calls=4, replicates=20, seed=9)
    assert not list(tmp_path.glob("run*"))

"""`imatrix eval` command: -m/--model names the reference (old --reference still parses), -f/--text the text, and
the options reach evaluate.run_eval unchanged; evaluation errors become one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from imatrix.cli import main
from imatrix.commands.eval import eval_command
from imatrix.llamacpp import evaluate


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


def test_options_reach_run_eval_and_errors_are_one_message(files, monkeypatch, tmp_path):
    seen = {}

    def fake_run_eval(reference, quants, text, options, logits_file=None, progress=None):
        seen.update(reference=reference, quants=quants, text=text, options=options, logits_file=logits_file)
        raise evaluate.EvalError(f"{reference}: llama-perplexity failed (test)")

    monkeypatch.setattr(evaluate, "run_eval", fake_run_eval)
    result = CliRunner().invoke(main, ["eval", "-m", str(files["ref.gguf"]), str(files["q1.gguf"]),
                                       str(files["q2.gguf"]), "-f", str(files["eval.txt"]), "-c", "128",
                                       "--chunks", "3", "-t", "2", "--logits-file", str(tmp_path / "l.bin")])
    assert result.exit_code == 1 and "ref.gguf: llama-perplexity failed (test)" in result.output
    assert "Traceback" not in result.output
    assert seen["reference"] == files["ref.gguf"] and seen["quants"] == (files["q1.gguf"], files["q2.gguf"])
    assert seen["text"] == files["eval.txt"] and seen["logits_file"] == tmp_path / "l.bin"
    assert (seen["options"].ctx_size, seen["options"].chunks, seen["options"].threads) == (128, 3, 2)
    assert not list(tmp_path.glob("eval_report*"))

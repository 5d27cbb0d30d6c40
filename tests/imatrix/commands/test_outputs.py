"""imatrix outputs under stress: a full disk is one clear error naming the file (collect, convert, merge), a second
collect on a locked output fails at once, -c beyond the model's context is refused, a truncated model GGUF given
to gate is a clear error."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from calibkit.atomic import leftovers, output_lock
from imatrix.cli import main
from imatrix.files.imatrix_file import write_gguf
from tests.imatrix.collect.test_chunks import word_tokenizer, words
from tests.imatrix.commands.test_files import build as build_imatrix
from tests.imatrix.tiny_models import build

REPO = Path(__file__).resolve().parents[3]
CLI = "import sys; from imatrix.cli import main; sys.argv[0] = 'imatrix'; main()"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama-64")
    model, _ = build("llama")
    model.config.vocab_size = 320
    model.config.max_position_embeddings = 64
    model.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture()
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "calib.txt"
    path.write_text(words(400) + "\n")
    return path


def imatrix_cli(*args, limit: int | None = None) -> subprocess.CompletedProcess:
    def cap_file_size() -> None:  # writes beyond `limit` bytes fail as on a full disk (EFBIG instead of ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300,
                          preexec_fn=cap_file_size if limit else None)


def assert_clear_full_disk_error(done: subprocess.CompletedProcess, output: Path) -> None:
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"Error: {output}: File too large" in done.stderr, done.stderr
    assert not output.exists() and leftovers(output) == []


@pytest.mark.parametrize("command", ["convert", "merge"])
def test_full_disk_in_convert_and_merge_names_the_output(command: str, tmp_path: Path) -> None:
    source = tmp_path / "a.gguf"
    write_gguf(build_imatrix(), source)
    output = tmp_path / "out.gguf"
    args = [source, "-o", output] if command == "convert" else [source, source, "-o", output]
    assert_clear_full_disk_error(imatrix_cli(command, *args, limit=200), output)


def test_full_disk_in_collect_names_the_output(tiny_model: Path, text_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "tiny.imatrix.gguf"
    done = imatrix_cli("collect", tiny_model, "--data", text_file, "-o", output, "-c", 16, "--no-progress",
                       "--output-frequency", 0, limit=300)
    assert_clear_full_disk_error(done, output)


def test_context_beyond_the_model_is_refused(tiny_model: Path, text_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "tiny.imatrix.gguf"
    result = CliRunner().invoke(main, ["collect", str(tiny_model), "--data", str(text_file), "-o", str(output),
                                       "-c", "128", "--no-progress"])
    assert result.exit_code == 1 and "-c 128 is beyond the model's context of 64 tokens" in result.output
    assert not output.exists()
    ok = CliRunner().invoke(main, ["collect", str(tiny_model), "--data", str(text_file), "-o", str(output),
                                   "-c", "64", "--no-progress"])
    assert ok.exit_code == 0, ok.output


def test_second_collect_on_a_locked_output_fails_at_once(tiny_model: Path, text_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "tiny.imatrix.gguf"
    (tmp_path / ".tiny.imatrix.gguf.ab12.tmp").write_bytes(b"half a file")  # left by a killed run
    with output_lock(output):
        result = CliRunner().invoke(main, ["collect", str(tiny_model), "--data", str(text_file), "-o", str(output),
                                           "-c", "16", "--no-progress"])
        assert result.exit_code == 1 and "another run" in result.output and not output.exists()
    result = CliRunner().invoke(main, ["collect", str(tiny_model), "--data", str(text_file), "-o", str(output),
                                       "-c", "16", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert output.exists() and leftovers(output) == []


@pytest.mark.parametrize("size", [30, 1000, 50_000])
def test_gate_with_a_truncated_model_is_a_clear_error(size: int, tmp_path: Path) -> None:
    import numpy as np

    from tests.imatrix.importance.test_gate import write_model

    whole = write_model(tmp_path / "whole.gguf", {"blk.0.attn_q.weight": np.ones((8, 8 * 256), np.float32)})
    model = tmp_path / "model.gguf"
    model.write_bytes(whole.read_bytes()[:size])
    from imatrix.importance.hybrid import write_raw

    imatrix = build_imatrix()
    raw = tmp_path / "cal.raw.gguf"
    write_raw(imatrix, {name: np.linspace(1, 2, entry.n_values) for name, entry in imatrix.entries.items()}, raw)
    result = CliRunner().invoke(main, ["gate", str(raw), "--validation", str(raw), "--model", str(model),
                                       "--type", "Q4_K", "-o", str(tmp_path / "gated.gguf")])
    assert result.exit_code == 1 and "not a readable GGUF, truncated or damaged" in result.output, result.output
    assert "Traceback" not in result.output

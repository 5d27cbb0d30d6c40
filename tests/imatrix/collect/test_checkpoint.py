"""Checkpoints and --resume: a run that fails at chunk k and is resumed writes the uninterrupted run's bytes."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from imatrix.cli import main
from imatrix.collect.checkpoint import CheckpointPaths
from imatrix.files.imatrix_file import read_imatrix
from imatrix.runners import resident
from tests.imatrix.collect.test_chunks import word_tokenizer, words
from tests.imatrix.tiny_models import build

CTX, CHUNKS, BATCH = 16, 9, 2  # batches: chunks 0-1, 2-3, 4-5, 6-7, 8


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-qwen3-moe")
    model, _ = build("qwen3-moe")
    model.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "calib.txt"
    path.write_text(words(CHUNKS * CTX + 5) + "\n")
    return path


def invoke(folder, text, out, *extra):
    args = ["collect", str(folder), "--data", str(text), "-o", str(out), "-c", str(CTX), "--batch-size", str(BATCH),
            "--dtype", "fp32", "--no-progress", *map(str, extra)]
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def uninterrupted(tiny_folder, text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "ref.gguf"
    result = invoke(tiny_folder, text_file, out)
    assert result.exit_code == 0, result.output
    return out.read_bytes(), _ppl_line(result.output)


def _ppl_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Final estimate"))


def _failing_runner(monkeypatch, fail_on_forward: int, error: BaseException, on_forward=None):
    """Wrap the resident runner so the second decoder layer raises on forward number `fail_on_forward` (0-based).

    Layer 0's hooks have already added part of that batch when it raises: the checkpoint must not contain it.
    """
    original = resident.run_resident

    def runner(model, *args, **kwargs):
        calls = []

        def hook(module, inputs):
            calls.append(1)
            if on_forward is not None:
                on_forward(len(calls) - 1)
            if len(calls) - 1 == fail_on_forward:
                raise error

        handle = model.model.layers[1].register_forward_pre_hook(hook)
        try:
            return original(model, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(resident, "run_resident", runner)


@pytest.mark.parametrize("error", [RuntimeError("injected failure"), KeyboardInterrupt()])
def test_failure_then_resume_equals_uninterrupted(tiny_folder, text_file, tmp_path, monkeypatch, uninterrupted,
                                                  error):
    out = tmp_path / "out.gguf"
    paths = CheckpointPaths.beside(out)
    _failing_runner(monkeypatch, 3, error)  # batch 3 = chunks 6-7
    if isinstance(error, KeyboardInterrupt):
        result = invoke(tiny_folder, text_file, out)
        assert result.exit_code == 1 and "interrupted" in result.output
    else:
        with pytest.raises(RuntimeError, match="injected"):
            invoke(tiny_folder, text_file, out)
    assert not out.exists()
    state = json.loads(paths.state.read_text())
    assert state["next_chunk"] == 6
    assert read_imatrix(paths.gguf).chunk_count == 6
    assert all(e.counts.sum() > 0 for e in read_imatrix(paths.gguf).entries.values())
    monkeypatch.undo()
    result = invoke(tiny_folder, text_file, out, "--resume")
    assert result.exit_code == 0, result.output
    assert "chunks 0..5 done, 3 to go" in result.output
    reference_bytes, reference_ppl = uninterrupted
    assert out.read_bytes() == reference_bytes
    assert _ppl_line(result.output) == reference_ppl
    assert not paths.state.exists() and not paths.gguf.exists()  # a finished run removes its checkpoint


def test_save_every_writes_periodic_checkpoints_that_resume_exactly(tiny_folder, text_file, tmp_path, monkeypatch,
                                                                      uninterrupted):
    out = tmp_path / "out.gguf"
    paths = CheckpointPaths.beside(out)
    kept = tmp_path / "kept"
    seen = []

    def copy_checkpoint(forward: int):
        if forward == 3 and paths.state.exists():  # checkpoint written after batch 1 (chunk 4), read during batch 3
            seen.append(json.loads(paths.state.read_text())["next_chunk"])
            kept.mkdir()
            for path in (paths.state, paths.gguf):
                shutil.copy(path, kept / path.name)

    _failing_runner(monkeypatch, -1, RuntimeError("never"), on_forward=copy_checkpoint)
    result = invoke(tiny_folder, text_file, out, "--save-every", 4)
    assert result.exit_code == 0, result.output
    assert seen == [4]
    assert out.read_bytes() == uninterrupted[0]
    monkeypatch.undo()
    out.unlink()
    for path in kept.iterdir():
        shutil.copy(path, tmp_path / path.name)
    result = invoke(tiny_folder, text_file, out, "--resume")
    assert result.exit_code == 0, result.output
    assert "chunks 0..3 done, 5 to go" in result.output
    assert out.read_bytes() == uninterrupted[0]
    assert _ppl_line(result.output) == uninterrupted[1]


def test_float64_accumulators_resume_exactly(tiny_folder, text_file, tmp_path, monkeypatch):
    reference = tmp_path / "ref64.gguf"
    assert invoke(tiny_folder, text_file, reference, "--accumulate", "float64").exit_code == 0
    out = tmp_path / "out64.gguf"
    _failing_runner(monkeypatch, 2, RuntimeError("injected failure"))
    with pytest.raises(RuntimeError):
        invoke(tiny_folder, text_file, out, "--accumulate", "float64")
    assert CheckpointPaths.beside(out).exact.exists()  # float64 sums do not fit the GGUF: exact sidecar
    monkeypatch.undo()
    assert invoke(tiny_folder, text_file, out, "--accumulate", "float64", "--resume").exit_code == 0
    assert out.read_bytes() == reference.read_bytes()


def test_resume_refuses_a_different_run(tiny_folder, text_file, tmp_path, monkeypatch):
    out = tmp_path / "out.gguf"
    _failing_runner(monkeypatch, 2, RuntimeError("injected failure"))
    with pytest.raises(RuntimeError):
        invoke(tiny_folder, text_file, out)
    monkeypatch.undo()
    other_text = tmp_path / "other.txt"
    other_text.write_text(words(CHUNKS * CTX + 5, start=7) + "\n")
    cases = [(text_file, ["-c", 8], "ctx_size"), (text_file, ["--batch-size", 3], "chunks_per_batch"),
             (other_text, [], "data_sha256"), (text_file, ["--chunks", 5], "n_chunk"),
             (text_file, ["--accumulate", "float64"], "accumulate")]
    for data, extra, field in cases:
        args = ["collect", str(tiny_folder), "--data", str(data), "-o", str(out), "-c", str(CTX), "--batch-size",
                str(BATCH), "--dtype", "fp32", "--no-progress", "--resume", *map(str, extra)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (extra, result.output)
        assert "cannot resume" in result.output and field in result.output, result.output
        assert "Traceback" not in result.output
    CheckpointPaths.beside(out).gguf.write_bytes(b"tampered")
    result = invoke(tiny_folder, text_file, out, "--resume")
    assert result.exit_code == 1 and "changed since" in result.output


def test_resume_without_checkpoint_is_a_clear_error(tiny_folder, text_file, tmp_path):
    result = invoke(tiny_folder, text_file, tmp_path / "none.gguf", "--resume")
    assert result.exit_code == 1
    assert "no checkpoint to resume from" in result.output


@pytest.mark.timeout(240)
def test_real_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tiny_folder, tmp_path):
    """SIGINT to a running `imatrix collect` (not an injected exception): checkpoint, exit 1, resume == uninterrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    text = tmp_path / "long.txt"
    text.write_text(words(400 * CTX + 5) + "\n")
    script = Path(sys.executable).with_name("imatrix")
    reference, out = tmp_path / "reference.gguf", tmp_path / "out.gguf"
    args = ["collect", str(tiny_folder), "--data", str(text), "-c", str(CTX), "--batch-size", "1", "--dtype", "fp32",
            "--no-progress", "--save-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run([str(script), *args, "-o", str(reference)], env=env, capture_output=True).returncode == 0
    paths = CheckpointPaths.beside(out)
    process = subprocess.Popen([str(script), *args, "-o", str(out)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not paths.state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-2000:]
    assert "interrupted" in stderr and "rerun with --resume" in stderr
    done = json.loads(paths.state.read_text())["next_chunk"]
    assert 0 < done < 400
    resumed = subprocess.run([str(script), *args, "-o", str(out), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"chunks 0..{done - 1} done" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()

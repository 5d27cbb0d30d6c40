"""`logminer split` publishes its folder whole: real SIGKILLs at many points of real runs leave the previous complete
output or the new one (manifest hashes match every file), concurrent runs on one folder never mix, and the next
run removes what a killed one left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calibkit.atomic import leftovers, manifest_files, output_lock
from logminer.schema import Session, Turn, sessions_to_frame

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from dedup_throughput import planted_corpus  # noqa: E402

CLI = "import sys; from logminer.cli import main; sys.argv[0] = 'logminer'; main()"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    corpus = planted_corpus(docs=1500, near=100, exact=20, seed=4)
    path = tmp_path_factory.mktemp("publish") / "sessions.parquet"
    sessions_to_frame([Session(session_id=f"s{i}", agent="t", source_file="p.jsonl", line_start=i + 1,
                               turns=[Turn("user", "task"), Turn("assistant", text)])
                       for i, text in enumerate(corpus.texts)]).write_parquet(path)
    return path


def split(sessions: Path, out: Path, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, "split", str(sessions), "-o", str(out), "--seed", str(seed),
                             "--no-progress"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def consistent_seed(out: Path) -> int:
    """The seed of the complete output in `out`; fails unless every file is the one its manifest names."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest_files(out, exclude=("manifest.json",)) == manifest["files"]
    assert {p.name for p in out.iterdir()} == {"manifest.json", *manifest["files"]}
    return manifest["options"]["split"]["seed"]


def test_sigkill_during_split_never_leaves_a_mix(sessions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    started = time.monotonic()
    assert split(sessions, out, seed=1).wait(timeout=300) == 0
    duration = time.monotonic() - started
    seeds = set()
    for step in range(10):
        child = split(sessions, out, seed=100 + step)
        time.sleep(duration * (0.5 + 0.06 * step))  # the later points fall in the write phase
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        seeds.add(consistent_seed(out))
    assert 1 in seeds
    assert split(sessions, out, seed=7).wait(timeout=300) == 0
    assert consistent_seed(out) == 7 and leftovers(out) == []


def test_concurrent_runs_on_one_folder_fail_at_once_or_serialise(sessions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out):  # another run holds the folder: fail at once, with the reason, write nothing
        started = time.monotonic()
        child = split(sessions, out, seed=1)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 1 and b"another run" in stderr and b"is writing this output" in stderr
        assert time.monotonic() - started < 60 and not out.exists()
    runs = [split(sessions, out, seed=seed) for seed in (2, 3)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert any(code == 0 for code, _ in results)
    for code, stderr in results:
        assert code == 0 or b"another run" in stderr
    assert consistent_seed(out) in {seed for seed, (code, _) in zip((2, 3), results) if code == 0}

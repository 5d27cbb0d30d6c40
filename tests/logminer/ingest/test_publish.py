"""`logminer ingest -o` publishes sessions.parquet and report.json whole: SIGKILL at many points leaves the previous
pair or the new one (report.json names the parquet's sha256), a second run fails at once, the next run removes a
killed run's .tmp files and .parts folders, and a full disk is one clear error naming the path."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calibkit.atomic import leftovers, output_lock, sha256_file

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from split_throughput import generate  # noqa: E402

CLI = "import sys; from logminer.cli import main; sys.argv[0] = 'logminer'; main()"


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    generate(folder, sessions=1500, files=6)
    return folder


def ingest(inputs: Path, output: Path, *extra: str, limit: int | None = None) -> subprocess.Popen:
    def cap_file_size() -> None:  # a file-size limit makes writes fail the way a full disk does (EFBIG / ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, "-c", CLI, "ingest", str(inputs), "-o", str(output), "-j", "1", *extra],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=cap_file_size if limit else None)


def pair_is_consistent(output: Path) -> str:
    report = json.loads((output.parent / "report.json").read_text())
    assert report["output"] == {"file": output.name, "sha256": sha256_file(output)}
    return report["options"]["min_turns"]


def test_sigkill_at_many_points_leaves_a_consistent_pair(raw: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "sessions.parquet"
    started = time.monotonic()
    assert ingest(raw, output).wait(timeout=300) == 0
    duration = time.monotonic() - started
    for step in range(8):
        child = ingest(raw, output, "--min-turns", str(2 + step))
        time.sleep(duration * (0.4 + 0.08 * step))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        pair_is_consistent(output)
    assert ingest(raw, output, "--min-turns", "3").wait(timeout=300) == 0
    assert pair_is_consistent(output) == 3
    assert leftovers(output) == [] and leftovers(output.parent / "report.json") == []


def test_second_run_fails_at_once_and_leftovers_are_removed(raw: Path, tmp_path: Path) -> None:
    output = tmp_path / "sessions.parquet"
    (tmp_path / ".sessions.parquet.parts.abc").mkdir()
    (tmp_path / ".sessions.parquet.parts.abc" / "part-000000.parquet").write_bytes(b"partial")
    (tmp_path / ".report.json.x1y2.tmp").write_text("{")
    with output_lock(output):
        child = ingest(raw, output)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 1 and b"another run" in stderr and not output.exists()
    assert ingest(raw, output).wait(timeout=300) == 0
    pair_is_consistent(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".report.json.lock", ".sessions.parquet.lock",
                                                          "report.json", "sessions.parquet"]


def test_full_disk_is_one_clear_error_naming_the_path(raw: Path, tmp_path: Path) -> None:
    output = tmp_path / "sessions.parquet"
    child = ingest(raw, output, limit=200_000)
    _, stderr = child.communicate(timeout=300)
    message = stderr.decode()
    assert child.returncode == 1 and "Traceback" not in message, message
    assert "Error: " in message and str(tmp_path) in message and "File too large" in message
    assert not output.exists() and leftovers(output) == []

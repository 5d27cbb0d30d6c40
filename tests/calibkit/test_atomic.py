"""Outputs as one unit: a folder is the previous complete one or the new complete one (also under SIGKILL at any
point), a second run on a locked output fails at once, a killed run's leftovers are removed by the next."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calibkit.atomic import (
    OutputBusy,
    OutputRefused,
    leftovers,
    manifest_files,
    output_lock,
    publish_folder,
    remove_leftovers,
    write_atomic,
)

REPO = Path(__file__).resolve().parents[2]

# a child that publishes FILES files of one generation slowly (so SIGKILL lands anywhere), manifest last
WRITER = """
import json, sys, time
from calibkit.atomic import manifest_files, publish_folder, write_atomic
target, generation, files = sys.argv[1], sys.argv[2], int(sys.argv[3])
with publish_folder(target, "manifest.json") as staging:
    for n in range(files):
        write_atomic(staging / f"part{n:02d}.txt", f"{generation} {n}\\n" * 1000)
        time.sleep(0.01)
    manifest = {"generation": generation, "files": manifest_files(staging)}
    write_atomic(staging / "manifest.json", json.dumps(manifest))
"""


def run_writer(target: Path, generation: str, files: int = 20) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(target), generation, str(files)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)


def complete_generation(folder: Path) -> str | None:
    """The generation a folder holds when it is complete and unmixed (None when absent); fails on a mix."""
    if not folder.exists():
        return None
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest_files(folder, exclude=("manifest.json",)) == manifest["files"]
    assert {p.name for p in folder.iterdir()} == {"manifest.json", *manifest["files"]}
    generations = {(folder / name).read_text().split()[0] for name in manifest["files"]}
    assert generations == {manifest["generation"]}
    return manifest["generation"]


def test_publish_replaces_whole_and_keeps_the_old_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with publish_folder(out, "manifest.json") as staging:
        write_atomic(staging / "a.txt", "one")
        write_atomic(staging / "manifest.json", "{}")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "manifest.json"]
    with pytest.raises(RuntimeError), publish_folder(out, "manifest.json") as staging:
        write_atomic(staging / "b.txt", "two")
        raise RuntimeError("a stage failed")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "manifest.json"]  # untouched
    with publish_folder(out, "manifest.json") as staging:
        write_atomic(staging / "b.txt", "two")
        write_atomic(staging / "manifest.json", "{}")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt", "manifest.json"]  # a.txt of the old run is gone
    assert leftovers(out) == [] and sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_a_folder_this_command_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputRefused, match="not an output of this command"), publish_folder(home, "manifest.json"):
        pass
    assert (home / "thesis.tex").read_text() == "years of work"
    (tmp_path / "empty").mkdir()
    with publish_folder(tmp_path / "empty", "manifest.json") as staging:
        write_atomic(staging / "manifest.json", "{}")
    assert (tmp_path / "empty" / "manifest.json").exists()


def test_a_linked_output_folder_is_replaced_where_the_link_points(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "disk")
    for generation in ("one", "two"):
        with publish_folder(tmp_path / "out", "manifest.json") as staging:
            write_atomic(staging / "manifest.json", generation)
    assert (tmp_path / "out").is_symlink() and (tmp_path / "out" / "manifest.json").read_text() == "two"


def test_second_run_on_a_locked_output_fails_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out):
        started = time.monotonic()
        with pytest.raises(OutputBusy, match=f"process {os.getpid()}"), output_lock(out):
            pass
        child = run_writer(out, "second")
        _, stderr = child.communicate(timeout=60)
        assert child.returncode != 0 and b"another run" in stderr
        assert time.monotonic() - started < 30 and not out.exists()
    with output_lock(out):  # released when the holder is done
        pass


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "sessions.parquet"
    junk = [tmp_path / ".sessions.parquet.abc123.tmp", tmp_path / ".sessions.parquet.parts.x1",
            tmp_path / ".sessions.parquet.tmp-zz", tmp_path / ".sessions.parquet.old-q"]
    junk[0].write_text("half")
    for folder in junk[1:]:
        folder.mkdir()
        (folder / "part-000000.parquet").write_text("x")
    (tmp_path / "unrelated.tmp").write_text("keep")
    assert leftovers(out) == sorted(junk)
    with output_lock(out):
        assert sorted(remove_leftovers(out)) == sorted(junk)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sessions.parquet.lock", "unrelated.tmp"]


def test_sigkill_at_many_points_leaves_old_or_new_never_a_mix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_writer(out, "old")
    assert first.wait(timeout=60) == 0
    started = time.monotonic()
    assert run_writer(out, "timing").wait(timeout=60) == 0
    duration = time.monotonic() - started
    seen = set()
    for step in range(16):
        child = run_writer(out, f"new{step}")
        time.sleep(duration * (0.3 + 0.06 * step))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        seen.add(complete_generation(out))
    assert run_writer(out, "final").wait(timeout=60) == 0
    assert complete_generation(out) == "final" and leftovers(out) == []
    assert len(seen) >= 2  # some kills landed before publishing, some after

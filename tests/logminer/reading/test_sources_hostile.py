"""Bad inputs never stop or hang a run: FIFOs, sockets and devices are skipped by file type without opening;
dangling and looping links, unreadable files and non-UTF-8 names are one counted rejection each (in inspect, ingest
with and without its worker pool, and split); UTF-16/32 with a BOM is decoded before detection; a raw NUL byte costs
one line, not the file."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from logminer.reading.sources import SourceError, SourceFile, expand_inputs, safe_name

REPO = Path(__file__).resolve().parents[3]
CLI = "import sys; from logminer.cli import main; sys.argv[0] = 'logminer'; main()"


def chat(number: int) -> str:
    return json.dumps({"id": f"c{number}", "messages": [
        {"role": "user", "content": f"Please explain item {number} of the parser module in detail."},
        {"role": "assistant", "content": f"Item {number} splits each line on commas and trims the fields."}]})


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder of good and bad inputs; returns it and {file name: expected rejection reason fragment}."""
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "good.jsonl").write_text(chat(1) + "\n" + chat(2) + "\n")
    (folder / "utf16.jsonl").write_bytes(b"\xff\xfe" + (chat(3) + "\n").encode("utf-16-le"))
    (folder / "utf32.jsonl").write_bytes(b"\x00\x00\xfe\xff" + (chat(4) + "\n").encode("utf-32-be"))
    nul = chat(6).replace("commas", "com\x00mas")
    (folder / "nul.jsonl").write_bytes((chat(5) + "\n" + nul + "\n" + chat(7) + "\n").encode())
    os.mkfifo(folder / "pipe.jsonl")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "agent.sock"))
    os.symlink(folder / "gone.jsonl", folder / "dangling.jsonl")
    os.symlink(folder / "loop.jsonl", folder / "loop.jsonl")
    os.symlink("/dev/null", folder / "device.jsonl")
    os.symlink("/proc/1/mem", folder / "unreadable.jsonl")
    (folder / os.fsdecode(b"caf\xe9.jsonl")).write_text(chat(8) + "\n")
    expected = {"pipe.jsonl": "named pipe (FIFO), not a regular file", "agent.sock": "a socket, not a regular file",
                "dangling.jsonl": "dangling symbolic link", "loop.jsonl": "symbolic link loop",
                "device.jsonl": "a character device, not a regular file", "unreadable.jsonl": "cannot read",
                "caf\\xe9.jsonl": "file name is not valid UTF-8"}
    yield folder, expected
    server.close()


def run(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=timeout)  # a hang fails the test


def check_report(report: dict, folder: Path, expected: dict[str, str]) -> None:
    files = report["files"]
    for name, reason in expected.items():
        stats = files[str(folder / name)]
        assert sum(stats["records_rejected"].values()) == 1 and reason in next(iter(stats["records_rejected"])), name
    assert files[str(folder / "good.jsonl")]["sessions_kept"] == 2
    assert files[str(folder / "utf16.jsonl")]["format"] == files[str(folder / "good.jsonl")]["format"]
    assert files[str(folder / "utf16.jsonl")]["sessions_kept"] == 1
    assert files[str(folder / "utf32.jsonl")]["sessions_kept"] == 1
    nul = files[str(folder / "nul.jsonl")]
    assert nul["sessions_kept"] == 2 and sum(nul["records_rejected"].values()) == 1  # only the line with the NUL


def test_inspect_and_ingest_reject_each_bad_file_once(hostile, tmp_path: Path) -> None:
    folder, expected = hostile
    inspect = run("inspect", str(folder), "--json")
    assert inspect.returncode == 0, inspect.stderr
    rows = {row["file"]: row for row in map(json.loads, inspect.stdout.splitlines())}
    for name, reason in expected.items():
        assert reason in next(iter(rows[str(folder / name)]["rejected"])), name
    out = tmp_path / "out" / "sessions.parquet"
    ingest = run("ingest", str(folder), "-o", str(out), "-j", "1")
    assert ingest.returncode == 0, ingest.stderr
    check_report(json.loads((out.parent / "report.json").read_text()), folder, expected)
    assert pl.read_parquet(out).height == 2 + 1 + 1 + 2


def test_worker_pool_does_not_hang_on_bad_files(hostile, tmp_path: Path) -> None:
    """The ingest pool (jobs > 1) with every bad file present: the run ends and counts them (a SourceError crossing
    the process boundary once could not be rebuilt in the parent, and the pool waited for ever)."""
    folder, expected = hostile
    code = ("import json, sys\nfrom logminer.ingest.pipeline import IngestOptions, ingest\n"
            "report = ingest([sys.argv[1]], sys.argv[2], IngestOptions(jobs=2, parallel_min_bytes=0))\n"
            "print(json.dumps(report.to_json()))")
    done = subprocess.run([sys.executable, "-c", code, str(folder), str(tmp_path / "s.parquet")], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    check_report(json.loads(done.stdout), folder, expected)
    error = pickle.loads(pickle.dumps(SourceError("a.jsonl", "no such file")))
    assert (error.path, error.reason, str(error)) == ("a.jsonl", "no such file", "a.jsonl: no such file")


def test_split_goes_on_past_bad_files_with_their_lines(hostile, tmp_path: Path) -> None:
    folder, expected = hostile
    out = tmp_path / "split"
    done = run("split", str(folder), "-o", str(out), "--no-progress", "-j", "1")
    assert done.returncode == 0, done.stderr
    rejected = pl.read_parquet(out / "rejected.parquet")
    for name, reason in expected.items():
        rows = rejected.filter(pl.col("source_file") == str(folder / name))
        assert rows.height == 1 and rows["records"][0] == 1 and reason in rows["reason"][0], name
    nul = rejected.filter(pl.col("source_file") == str(folder / "nul.jsonl"))
    assert nul["line"].to_list() == [2]  # the line report.json names, not 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["adds_up"] and manifest["counts"]["input_sessions"] == 6
    fifo = next(i for i in manifest["inputs"] if i["path"].endswith("pipe.jsonl"))
    assert fifo["sha256"] is None  # listed, never opened


def test_expand_inputs_lists_links_and_special_files_for_the_readers(hostile) -> None:
    folder, expected = hostile
    listed = {os.path.basename(p) for p in expand_inputs([str(folder)])}
    assert {os.fsdecode(b"caf\xe9.jsonl"), *[n for n in expected if not n.startswith("caf")]} <= listed
    with pytest.raises(SourceError, match="no such file"):
        expand_inputs([str(folder / "typo.jsonl")])
    assert expand_inputs([str(folder / "dangling.jsonl")]) == [str(folder / "dangling.jsonl")]
    assert safe_name(os.fsdecode(b"/x/caf\xe9")) == "/x/caf\\xe9"


def test_byte_order_marks_and_binary_detection(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    for encoding, mark in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-32-le", b"\xff\xfe\0\0"),
                           ("utf-32-be", b"\0\0\xfe\xff"), ("utf-8", b"\xef\xbb\xbf")):
        path.write_bytes(mark + "héllo {wörld}\n".encode(encoding))
        source = SourceFile.open(path)
        assert source.text == "héllo {wörld}\n" and not source.is_binary, encoding
    path.write_bytes(b"\xff\xfe" + b"\x00\xd8")  # a lone UTF-16 surrogate
    with pytest.raises(SourceError, match="not UTF-16 text"):
        SourceFile.open(path)
    path.write_bytes(b"PAR1" + bytes(200))
    assert SourceFile.open(path).is_binary
    path.write_bytes(b'{"a": "x\x00y"}\n' + b'{"a": "b"}\n' * 50)  # one stray NUL: text, its line rejected
    assert not SourceFile.open(path).is_binary

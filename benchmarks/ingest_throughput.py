"""Ingest throughput: MB/s of raw logs and sessions/s, end to end (parse + redact + clean + score + write), with
peak memory, on ../shared/real-logs, on a generated corpus (default 200 MB) built from the bundled example logs, and
on a generated corpus of agent SQLite stores (OpenCode opencode.db and Crush crush.db files, default 80 MB), whose
MB/s is printed as a ratio to the JSONL corpus measured in the same run.

Each measurement runs in a fresh subprocess so its peak RSS (getrusage of the child) is its own. The generated
corpus goes to a temporary folder and is deleted afterwards. Usage:

    .venv/bin/python benchmarks/ingest_throughput.py [--corpus-mb 200] [--sqlite-mb 80] [--real-logs PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sqlite3
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "logs"
REAL_LOGS = ROOT.parent / "shared" / "real-logs"
WORDS = ("the function returns a value when called with arguments parse file test error fix update module import "
         "class method variable loop index list dict string number result output check build run install package "
         "version branch commit merge review change line column token model layer tensor batch shape").split()
CODE_SNIPPETS = ["def f(x):\n    return x + 1\n", "for i in range(10):\n    total += i\n", "if err != nil {\n"
                 "    return err\n}\n", "const x = await fetch(url);\n", "$ pytest -q\n3 passed in 0.12s\n"]
TARGET_FILE_BYTES = 512 * 1024


def varied_text(rng: random.Random, length: int) -> str:
    """Prose and code of about `length` characters, different on every call."""
    parts: list[str] = []
    size = 0
    while size < length:
        piece = rng.choice(CODE_SNIPPETS) if rng.random() < 0.15 else " ".join(rng.choices(WORDS, k=12)) + ".\n"
        parts.append(piece)
        size += len(piece)
    return "".join(parts)


def vary(value, rng: random.Random, factor: int):
    """Every prose string (has a space, not an id) replaced by `factor` times as much varied text."""
    if isinstance(value, dict):
        return {key: vary(item, rng, factor) for key, item in value.items()}
    if isinstance(value, list):
        return [vary(item, rng, factor) for item in value]
    if isinstance(value, str) and " " in value and len(value) > 12:
        return varied_text(rng, len(value) * factor)
    return value


def jsonl_examples() -> list[tuple[str, list]]:
    """(relative name, parsed lines) of every JSONL example file (decompressed), the corpus seeds."""
    seeds = []
    for path in sorted(EXAMPLES.rglob("*")):
        if not path.is_file() or not path.name.endswith((".jsonl", ".jsonl.gz")):
            continue
        data = path.read_bytes()
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
        try:
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            continue
        seeds.append((str(path.relative_to(EXAMPLES)).removesuffix(".gz"), lines))
    return seeds


def generate_corpus(folder: Path, megabytes: int, seed: int = 0) -> int:
    """Write varied copies of the example JSONL logs until `megabytes` MB; returns the bytes written."""
    rng = random.Random(seed)
    seeds = jsonl_examples()
    written = 0
    copy = 0
    while written < megabytes * 1_000_000:
        for name, lines in seeds:
            seed_size = sum(len(json.dumps(line)) for line in lines)
            factor = max(1, TARGET_FILE_BYTES // max(seed_size, 1))
            target = folder / f"copy{copy:05d}" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            body = "\n".join(json.dumps(vary(line, rng, factor), ensure_ascii=False) for line in lines) + "\n"
            target.write_text(body, encoding="utf-8")
            written += len(body.encode("utf-8"))
        copy += 1
    return written


SQLITE_FILES = 8  # the store corpus is split into this many databases (half OpenCode, half Crush)


def opencode_store(path: Path, rng: random.Random, megabytes: float) -> None:
    """An opencode.db (1.x session / message / part tables) of about `megabytes` MB of varied sessions."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE project (id TEXT PRIMARY KEY, worktree TEXT);"
        "CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT, parent_id TEXT, directory TEXT, title TEXT,"
        " version TEXT, time_created INTEGER, time_updated INTEGER);"
        "CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, time_created INTEGER, time_updated INTEGER,"
        " data TEXT);"
        "CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT, session_id TEXT, time_created INTEGER,"
        " time_updated INTEGER, data TEXT);"
        "CREATE INDEX part_session_idx ON part (session_id);"
        "CREATE INDEX message_session_idx ON message (session_id, time_created, id);")
    written, session = 0, 0
    while written < megabytes * 1_000_000:
        sid, t = f"ses_{session:06d}", 1_770_000_000_000 + session * 1000
        connection.execute("INSERT INTO session VALUES (?, 'p', NULL, '/w', 'bench', '1.2', ?, ?)", (sid, t, t))
        for turn in range(10):
            user, reply = f"msg_{sid}_{turn:02d}a", f"msg_{sid}_{turn:02d}b"
            command = varied_text(rng, 80)
            rows = [(user, {"role": "user", "time": {"created": t}}, [{"type": "text", "text": varied_text(rng, 400)}]),
                    (reply, {"role": "assistant", "time": {"created": t}, "modelID": "bench-model"},
                     [{"type": "step-start"}, {"type": "text", "text": varied_text(rng, 600)},
                      {"type": "tool", "callID": f"c{turn}", "tool": "bash", "state": {
                          "status": "completed", "input": {"command": command}, "output": varied_text(rng, 1200)}}])]
            for message_id, data, parts in rows:
                body = json.dumps(data)
                connection.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (message_id, sid, t, t, body))
                for index, part in enumerate(parts):
                    text = json.dumps(part)
                    written += len(text) + len(body)
                    connection.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
                                       (f"prt_{message_id}_{index}", message_id, sid, t, t, text))
        session += 1
    connection.commit()
    connection.close()


def crush_store(path: Path, rng: random.Random, megabytes: float) -> None:
    """A Crush crush.db (sessions / messages with JSON parts) of about `megabytes` MB of varied sessions."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, parent_session_id TEXT, title TEXT, cost REAL,"
        " updated_at INTEGER, created_at INTEGER);"
        "CREATE TABLE messages (id TEXT PRIMARY KEY, session_id TEXT, role TEXT, parts TEXT, model TEXT,"
        " created_at INTEGER, updated_at INTEGER);"
        "CREATE INDEX idx_messages_session_id ON messages (session_id);")
    written, session = 0, 0
    while written < megabytes * 1_000_000:
        sid, t = f"s{session:06d}", 1_754_709_000 + session
        connection.execute("INSERT INTO sessions VALUES (?, NULL, 'bench', 0.1, ?, ?)", (sid, t, t))
        for turn in range(10):
            call = f"call_{session}_{turn}"
            rows = [("user", [{"type": "text", "data": {"text": varied_text(rng, 400)}}]),
                    ("assistant", [{"type": "text", "data": {"text": varied_text(rng, 600)}},
                                   {"type": "tool_call", "data": {"id": call, "name": "bash", "input": json.dumps(
                                       {"command": varied_text(rng, 80)})}}]),
                    ("tool", [{"type": "tool_result", "data": {"tool_call_id": call, "name": "bash",
                                                                "content": varied_text(rng, 1200)}}])]
            for index, (role, parts) in enumerate(rows):
                text = json.dumps(parts)
                written += len(text)
                connection.execute("INSERT INTO messages VALUES (?, ?, ?, ?, 'bench-model', ?, ?)",
                                   (f"m{session}_{turn}_{index}", sid, role, text, t, t))
        session += 1
    connection.commit()
    connection.close()


def generate_sqlite_corpus(folder: Path, megabytes: int, seed: int = 1) -> int:
    """SQLITE_FILES agent databases (OpenCode and Crush, alternating) of about `megabytes` MB together."""
    rng = random.Random(seed)
    for index in range(SQLITE_FILES):
        target = folder / f"project{index:02d}"
        target.mkdir(parents=True, exist_ok=True)
        if index % 2:
            crush_store(target / "crush.db", rng, megabytes / SQLITE_FILES)
        else:
            opencode_store(target / "opencode.db", rng, megabytes / SQLITE_FILES)
    return folder_bytes(folder)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(inputs: Path, out_dir: Path, jobs: int = 1, redact_batch: int | None = None) -> dict:
    """Run one ingest in a child process; wall time, sessions and the child's peak RSS (with jobs > 1 the
    workers' own peak is reported separately by RUSAGE_CHILDREN). `redact_batch` (jobs=1 only) overrides how many
    sessions are redacted together; 1 is the unbatched baseline."""
    code = (
        "import json, sys, time, resource\n"
        "from logminer.ingest import pipeline\n"
        + (f"pipeline.REDACT_BATCH = {redact_batch}\n" if redact_batch else "") +
        "from logminer.ingest.pipeline import IngestOptions, ingest\n"
        "start = time.perf_counter()\n"
        "report = ingest([sys.argv[1]], sys.argv[2], IngestOptions(jobs=int(sys.argv[3]), parallel_min_bytes=0))\n"
        "seconds = time.perf_counter() - start\n"
        "own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'seconds': seconds, 'totals': report.totals(),\n"
        "                  'cpu_seconds': own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,\n"
        "                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,\n"
        "                  'worker_peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(inputs), str(out_dir / "sessions.parquet"), str(jobs)],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    stats["input_mb"] = folder_bytes(inputs) / 1e6
    stats["output_mb"] = (out_dir / "sessions.parquet").stat().st_size / 1e6
    return stats


def reading_rate(inputs: Path) -> float:
    """MB per CPU-second of the readers alone (detect + parse, no redaction or writing), in a child process."""
    code = ("import sys, time\nfrom logminer.reading.detect import read_inputs\n"
            "start = time.process_time()\nfor _ in read_inputs([sys.argv[1]]): pass\n"
            "print(time.process_time() - start)")
    result = subprocess.run([sys.executable, "-c", code, str(inputs)], capture_output=True, text=True, check=True,
                            cwd=ROOT)
    return folder_bytes(inputs) / 1e6 / max(float(result.stdout.strip().splitlines()[-1]), 1e-9)


def generate_small_sessions(folder: Path, sessions: int = 6000, megabytes: float = 15.0, files: int = 12,
                            seed: int = 0) -> int:
    """`sessions` small OpenAI-chat conversations (system, user, assistant tool call, tool result, answer) of
    about megabytes / sessions each, in `files` JSONL files; one in 20 quotes a key or a home folder. Returns the
    bytes written."""
    rng = random.Random(seed)
    per_session = int(megabytes * 1_000_000 / sessions)
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for number in range(files):
        lines = []
        for index in range(number * sessions // files, (number + 1) * sessions // files):
            size = per_session // 5
            extra = ""
            if index % 20 == 0:
                extra = f" export SERVICE_TOKEN=t{rng.getrandbits(64):x}Q9 in /home/user{index % 7}/proj"
            messages = [
                {"role": "system", "content": varied_text(rng, size // 2)},
                {"role": "user", "content": f"task {index}: " + varied_text(rng, size) + extra},
                {"role": "assistant", "content": varied_text(rng, size // 2), "tool_calls": [{
                    "id": f"c{index}", "type": "function",
                    "function": {"name": "bash", "arguments": json.dumps({"cmd": f"pytest -q tests/t{index}.py"})}}]},
                {"role": "tool", "tool_call_id": f"c{index}", "content": varied_text(rng, size)},
                {"role": "assistant", "content": varied_text(rng, size)},
            ]
            lines.append(json.dumps({"messages": messages}))
        body = "\n".join(lines) + "\n"
        (folder / f"chats{number:02d}.jsonl").write_text(body, encoding="utf-8")
        written += len(body.encode("utf-8"))
    return written


def measure_small_sessions(scratch: Path, jobs: list[int]) -> None:
    """Many small sessions (6,000 in 15 MB): redaction batched across sessions vs one session at a time (the
    baseline: redact_session per session, measured here in the same run)."""
    corpus = scratch / "small"
    written = generate_small_sessions(corpus)
    print(f"generated {written / 1e6:.1f} MB: 6000 small OpenAI-chat sessions")
    baseline = measure(corpus, scratch / "small-unbatched", 1, redact_batch=1)
    show("small sessions, jobs=1, redaction one session at a time (baseline)", baseline)
    batched = measure(corpus, scratch / "small-batched", 1)
    show("small sessions, jobs=1, redaction batched", batched)
    print(f"small sessions: batched redaction {baseline['seconds'] / batched['seconds']:.2f}x the baseline's speed")
    for count in (j for j in jobs if j > 1):
        show(f"small sessions, jobs={count}", measure(corpus, scratch / f"small{count}", count))
    shutil.rmtree(corpus, ignore_errors=True)


def show(label: str, stats: dict) -> None:
    totals = stats["totals"]
    print(f"{label}: {stats['input_mb']:.1f} MB in {stats['seconds']:.2f} s = "
          f"{stats['input_mb'] / stats['seconds']:.1f} MB/s wall, "
          f"{stats['input_mb'] / stats['cpu_seconds']:.1f} MB per CPU-second, {totals['sessions_kept']} sessions kept "
          f"({totals['sessions_kept'] / stats['seconds']:.0f} sessions/s, {totals['records']} records), "
          f"peak RSS {stats['peak_rss_mb']:.0f} MB (workers {stats['worker_peak_rss_mb']:.0f} MB), "
          f"output {stats['output_mb']:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus-mb", type=int, default=200, help="size of the generated corpus (default 200)")
    parser.add_argument("--real-logs", type=Path, default=REAL_LOGS)
    parser.add_argument("--sqlite-mb", type=int, default=80, help="size of the generated SQLite stores (default 80; 0: skip)")
    parser.add_argument("--keep", type=Path, help="write the generated corpus here and keep it")
    parser.add_argument("--jobs", default="1,2", help="comma-separated worker counts to measure (default 1,2)")
    args = parser.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.2f} "
          "(other processes slow these numbers down)")
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as scratch:
        scratch = Path(scratch)
        jobs = [int(j) for j in args.jobs.split(",")]
        if args.real_logs.is_dir():
            show("real logs, jobs=1", measure(args.real_logs, scratch / "real"))
        corpus = args.keep or scratch / "corpus"
        start = time.perf_counter()
        written = generate_corpus(corpus, args.corpus_mb)
        print(f"generated {written / 1e6:.0f} MB of varied JSONL logs in {time.perf_counter() - start:.0f} s")
        jsonl_rate = {}
        for count in jobs:
            stats = measure(corpus, scratch / f"generated{count}", count)
            jsonl_rate[count] = stats["input_mb"] / stats["seconds"]
            show(f"generated corpus, jobs={count}", stats)
        jsonl_reading = reading_rate(corpus)
        print(f"  readers alone on the JSONL corpus: {jsonl_reading:.1f} MB per CPU-second")
        if args.keep is None:
            shutil.rmtree(corpus, ignore_errors=True)
        if args.sqlite_mb:
            stores = scratch / "stores"
            start = time.perf_counter()
            written = generate_sqlite_corpus(stores, args.sqlite_mb)
            print(f"generated {written / 1e6:.0f} MB of SQLite stores ({SQLITE_FILES} databases: OpenCode, Crush) "
                  f"in {time.perf_counter() - start:.0f} s")
            for count in jobs:
                stats = measure(stores, scratch / f"stores{count}", count)
                show(f"SQLite stores, jobs={count}", stats)
                print(f"  SQLite / JSONL throughput at jobs={count}: "
                      f"{stats['input_mb'] / stats['seconds'] / jsonl_rate[count]:.2f}x")
            reading = reading_rate(stores)
            print(f"  readers alone on the SQLite stores: {reading:.1f} MB per CPU-second "
                  f"({reading / jsonl_reading:.2f}x the JSONL readers)")
        measure_small_sessions(scratch, jobs)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(benchmark driver peak RSS {own:.0f} MB; target: >= 20 MB/s end to end on 2 cores)")


if __name__ == "__main__":
    main()

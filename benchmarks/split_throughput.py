"""`logminer split` throughput on many small sessions, against a naive datasketch dedup measured in the same run.

Generates SESSIONS small OpenAI-chat conversations (default 6,000 in 12 JSONL files, ~15 MB: system prompt, user
task, assistant turns with tool calls and tool results, ~2.5 KB each, 5% near copies), then times, on the same
files:
  - `logminer split RAW -o OUT` end to end in-process (ingest in a worker pool → render → dedup → decontaminate →
    assign → audit → publish), as MB/s of raw input;
  - the naive baseline: datasketch MinHash (one update per word 5-gram of each rendered document, 120 permutations)
    and MinHashLSH insert + query at the same threshold, timed on a subset and extrapolated to every document.
Prints MB/s, the ratio (baseline time / split time) and a per-stage profile of the split.

    .venv/bin/python benchmarks/split_throughput.py [--sessions 6000] [--jobs 2] [--baseline-docs 1500]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("the function returns a value when called with arguments parse file test error fix update module import "
         "class method variable loop index list dict string number result output check build run install package "
         "version branch commit merge review change line column token model layer tensor batch shape").split()
PATH_PARAMETER = {"type": "object", "properties": {"path": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": PATH_PARAMETER}}
         for name in ("read_file", "run_tests", "edit_file")]


def _prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words)) + "."


def small_session(rng: random.Random, number: int) -> dict:
    """One OpenAI-chat conversation of about 2.5 KB."""
    messages = [{"role": "system", "content": "You are a coding assistant working in the repository."},
                {"role": "user", "content": f"Task {number}: " + _prose(rng, 30)}]
    for step in range(rng.randint(2, 4)):
        call = {"id": f"call_{number}_{step}", "type": "function",
                "function": {"name": rng.choice(TOOLS)["function"]["name"],
                             "arguments": json.dumps({"path": f"src/module_{rng.randint(0, 999)}.py"})}}
        messages.append({"role": "assistant", "content": _prose(rng, 20), "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": _prose(rng, 35)})
    messages.append({"role": "assistant", "content": _prose(rng, 40)})
    return {"id": f"conv-{number:06d}", "model": "gpt-4o", "tools": TOOLS, "messages": messages}


def generate(folder: Path, sessions: int, files: int = 12, seed: int = 0) -> int:
    """`sessions` conversations (5% near copies of earlier ones) in `files` JSONL files; returns the bytes."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made: list[dict] = []
    handles = [open(folder / f"chats-{n:02d}.jsonl", "w", encoding="utf-8") for n in range(files)]
    try:
        for number in range(sessions):
            if made and rng.random() < 0.05:
                session = json.loads(json.dumps(rng.choice(made)))
                session["id"] = f"conv-{number:06d}"
                session["messages"][-1]["content"] = _prose(rng, 40)
            else:
                session = small_session(rng, number)
                made.append(session)
            handles[number % files].write(json.dumps(session) + "\n")
    finally:
        for handle in handles:
            handle.close()
    return sum(path.stat().st_size for path in folder.iterdir())


def time_split(raw: Path, out: Path, jobs: int) -> tuple[float, dict]:
    from logminer.split.pipeline import SplitJob, run_split

    started = time.perf_counter()
    manifest = run_split(SplitJob(inputs=(str(raw),), out_dir=str(out), progress=False, jobs=jobs))
    return time.perf_counter() - started, manifest


def time_datasketch(texts: list[str], threshold: float = 0.7, num_perm: int = 120) -> float:
    """Seconds per document of the naive dedup: datasketch MinHash per shingle + MinHashLSH insert and query."""
    from datasketch import MinHash, MinHashLSH

    from logminer.split.minhash import normalized_words

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for index, text in enumerate(texts):
        words = normalized_words(text)
        signature = MinHash(num_perm=num_perm)
        for position in range(max(len(words) - 4, 1)):
            signature.update(" ".join(words[position : position + 5]).encode("utf-8"))
        lsh.query(signature)
        lsh.insert(str(index), signature)
    return (time.perf_counter() - started) / max(len(texts), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=6000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--baseline-docs", type=int, default=1500)
    parser.add_argument("--keep", type=Path, default=None, help="keep the generated corpus in this folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="split-bench-"))
    try:
        raw = args.keep or scratch / "raw"
        size = generate(raw, args.sessions)
        time_split(raw, scratch / "warm", args.jobs)  # first run pays one-off imports (tokenizers, polars plans)
        seconds, manifest = time_split(raw, scratch / "out", args.jobs)
        import polars as pl

        texts = [t for name in ("calibration", "validation", "eval") for t in
                 pl.read_parquet(scratch / "out" / f"{name}.parquet")["text"].to_list()]
        per_doc = time_datasketch(texts[: args.baseline_docs])
        baseline = per_doc * manifest["counts"]["input_sessions"]
        megabytes = size / 1e6
        print(f"corpus: {args.sessions} sessions, {megabytes:.1f} MB of OpenAI-chat JSONL; jobs={args.jobs}")
        print(f"logminer split end to end: {seconds:.2f} s = {megabytes / seconds:.1f} MB/s "
              f"({manifest['counts']['input_sessions'] / seconds:.0f} sessions/s)")
        print(f"naive datasketch dedup alone: {baseline:.2f} s (measured on {min(len(texts), args.baseline_docs)} "
              f"documents, {per_doc * 1e3:.2f} ms each) = {megabytes / baseline:.1f} MB/s")
        print(f"ratio: split end to end is {baseline / seconds:.1f}x the naive dedup alone")
        print("counts:", json.dumps(manifest["counts"], sort_keys=True))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

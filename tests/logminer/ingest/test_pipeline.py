"""End-to-end ingest: no planted secret reaches any output, records add up, runs are byte-identical, CLI works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from logminer.cli import main
from logminer.ingest.pipeline import INGEST_SCHEMA, IngestOptions, ingest
from logminer.schema import SESSION_SCHEMA
from tests.logminer.ingest.test_redact import PLANTED, PRIVATE_KEY

SECRETS = [value for _, value, _ in PLANTED] + ["MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn", "alice", "bob.jones"]


def secret_conversations() -> list[dict]:
    """OpenAI-chat conversations carrying every planted secret in text, tool arguments, results and tools."""
    text = "\n".join(context.format(value) for _, value, context in PLANTED) + "\n" + PRIVATE_KEY
    text += "\nworking in /home/alice/src and /Users/alice/x, mail bob.jones@example.com"
    conversations = []
    for index in range(3):
        conversations.append({
            "id": f"conv-{index}",
            "tools": [{"type": "function", "function": {"name": "bash", "description": text, "parameters": {}}}],
            "messages": [
                {"role": "system", "content": text},
                {"role": "user", "content": f"task {index}: {text}"},
                {"role": "assistant", "content": text, "tool_calls": [{
                    "id": "c1", "type": "function",
                    "function": {"name": "bash", "arguments": json.dumps({"cmd": text, "n": index})}}]},
                {"role": "tool", "tool_call_id": "c1", "content": text},
                {"role": "assistant", "content": "done"},
            ],
        })
    return conversations


def write_secret_logs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(c) for c in secret_conversations()]
    lines.insert(1, '{"messages": [{"role": "user", "content": "' + PLANTED[0][1] + '"')  # truncated JSON line
    (folder / "chats.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def output_text(out_dir: Path) -> str:
    frame = pl.read_parquet(out_dir / "sessions.parquet")
    return frame.write_ndjson() + (out_dir / "report.json").read_text()


def test_planted_secrets_never_reach_any_output(tmp_path):
    logs = write_secret_logs(tmp_path / "logs")
    out = tmp_path / "out"
    report = ingest([str(logs)], out / "sessions.parquet", IngestOptions())
    text = output_text(out)
    raw = (out / "sessions.parquet").read_bytes() + (out / "report.json").read_bytes()
    for value in SECRETS:
        assert value not in text, value
        assert value.encode() not in raw, value
    assert report.totals()["sessions_kept"] == 3
    kinds = {kind for kind, _, _ in PLANTED} | {"private_key", "home_path"}
    assert kinds <= set(report.redactions), kinds - set(report.redactions)
    frame = pl.read_parquet(out / "sessions.parquet")
    arguments = frame["turns"][0][2]["tool_calls"][0]["arguments"]
    assert json.loads(arguments)["n"] == 0  # still valid JSON after redaction


def test_accounting_adds_up_and_schema(tmp_path):
    logs = write_secret_logs(tmp_path / "logs")
    report = ingest([str(logs)], tmp_path / "o" / "sessions.parquet", IngestOptions(min_turns=6))
    totals = report.totals()
    assert totals["records"] == 4 == totals["records_kept"] + totals["records_filtered"] + totals["records_rejected"]
    assert totals["records_rejected"] == 1 and totals["records_kept"] == 0
    assert totals["filtered_by_reason"] == {"fewer than --min-turns 6 turns": 3}
    frame = pl.read_parquet(tmp_path / "o" / "sessions.parquet")
    assert frame.height == 0 and dict(frame.schema) == INGEST_SCHEMA
    assert set(SESSION_SCHEMA) <= set(frame.columns)


def test_real_logs_accounting_and_line_counts(real_logs, tmp_path):
    report = ingest([str(real_logs)], tmp_path / "sessions.parquet", IngestOptions())
    data = json.loads((tmp_path / "report.json").read_text())
    totals = data["totals"]
    assert totals["records"] == totals["records_kept"] + totals["records_filtered"] + totals["records_rejected"]
    assert totals["records"] == sum(f["records"] for f in data["files"].values())
    assert sum(f["records"] for f in data["formats"].values()) == totals["records"]
    checked = 0
    for path, stats in data["files"].items():
        if stats["format"] in ("claude-code", "codex") and path.endswith(".jsonl"):
            lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
            assert stats["records"] == len(lines), path
            checked += 1
    assert checked >= 5
    frame = pl.read_parquet(tmp_path / "sessions.parquet")
    assert frame.height == totals["sessions_kept"] == report.totals()["sessions_kept"] > 100
    assert frame["score"].is_between(0, 1).all()


def test_two_runs_are_byte_identical_and_batches_do_not_change_rows(tmp_path, example_logs):
    outputs = []
    for run, batch in enumerate((2000, 2000, 3)):
        out = tmp_path / f"run{run}"
        ingest([str(example_logs)], out / "sessions.parquet", IngestOptions(batch_size=batch))
        outputs.append(out)
    for name in ("sessions.parquet", "report.json"):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes()
    assert pl.read_parquet(outputs[0] / "sessions.parquet").equals(pl.read_parquet(outputs[2] / "sessions.parquet"))
    assert (outputs[0] / "report.json").read_bytes() == (outputs[2] / "report.json").read_bytes()


def test_parallel_jobs_give_identical_bytes(tmp_path, example_logs):
    one, two = tmp_path / "one", tmp_path / "two"
    ingest([str(example_logs)], one / "sessions.parquet", IngestOptions())
    ingest([str(example_logs)], two / "sessions.parquet", IngestOptions(jobs=2, parallel_min_bytes=0))
    for name in ("sessions.parquet", "report.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_max_tokens_truncates_and_min_tokens_filters(tmp_path):
    logs = write_secret_logs(tmp_path / "logs")
    report = ingest([str(logs)], tmp_path / "a" / "sessions.parquet", IngestOptions(max_tokens=600))
    frame = pl.read_parquet(tmp_path / "a" / "sessions.parquet")
    assert (frame["tokens"] <= 600).all()
    assert report.cleaning["session_truncated"] + sum(
        n for r, n in report.totals()["filtered_by_reason"].items() if "max-tokens" in r) == 3
    report = ingest([str(logs)], tmp_path / "b" / "sessions.parquet", IngestOptions(min_tokens=10**6))
    assert report.totals()["filtered_by_reason"] == {"fewer than --min-tokens 1000000 tokens": 3}


def save_tiny_tokenizer(folder: Path, template: str) -> Path:
    from tests.logminer.rendering.test_chat import tiny_tokenizer

    tiny_tokenizer(template).save_pretrained(folder)
    return folder


def test_cli_ingest_inspect_validate(tmp_path, example_logs):
    from tests.logminer.rendering.test_chat import TOOL_TEMPLATE

    runner = CliRunner()
    out = tmp_path / "out" / "sessions.parquet"
    result = runner.invoke(main, ["ingest", str(example_logs), "-o", str(out), "--min-turns", "2"])
    assert result.exit_code == 0, result.output
    totals = json.loads((out.parent / "report.json").read_text())["totals"]
    assert f"{totals['sessions_kept']} sessions" in result.output

    result = runner.invoke(main, ["inspect", str(example_logs / "openai-chat"), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {row["format"] for row in rows} == {"openai-chat"} and all(row["sessions"] > 0 for row in rows)
    assert not list(tmp_path.glob("**/*.tmp"))

    good = save_tiny_tokenizer(tmp_path / "tok", TOOL_TEMPLATE)
    result = runner.invoke(main, ["validate", str(out), "--tokenizer", str(good)])
    assert result.exit_code == 0, result.output
    assert f"{totals['sessions_kept']} of {totals['sessions_kept']} sessions render" in result.output

    strict = save_tiny_tokenizer(tmp_path / "strict", "{{ raise_exception('this template renders nothing') }}")
    result = runner.invoke(main, ["validate", str(out), "--tokenizer", str(strict)])
    assert result.exit_code == 1 and "this template renders nothing" in result.output
    assert result.output.count("FAIL ") == totals["sessions_kept"]

    result = runner.invoke(main, ["validate", str(out.parent / "report.json"), "--tokenizer", str(good)])
    assert result.exit_code == 1 and "not a sessions table" in result.output and "Traceback" not in result.output

    result = runner.invoke(main, ["ingest", str(tmp_path / "missing"), "-o", str(out)])
    assert result.exit_code == 1 and "no such file" in result.output and "Traceback" not in result.output


def test_cli_strict_stops_at_first_rejection(tmp_path):
    logs = write_secret_logs(tmp_path / "logs")
    result = CliRunner().invoke(main, ["ingest", str(logs), "-o", str(tmp_path / "o.parquet"), "--strict"])
    assert result.exit_code == 1 and "chats.jsonl: line 2: invalid JSON" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("command", ["ingest", "inspect"])
def test_cli_strict_error_is_redacted_like_the_report(tmp_path, command):
    aws_key = next(value for kind, value, _ in PLANTED if kind == "aws_access_key")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "odd.json").write_text(json.dumps({aws_key: 1, "foo": 2}))  # unknown shape: the reason lists its keys
    extra = ["-o", str(tmp_path / "o.parquet")] if command == "ingest" else []
    result = CliRunner().invoke(main, [command, str(logs), "--strict", *extra])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "odd.json: JSON of an unknown shape (keys: <SECRET:aws_access_key>, foo)" in result.output
    assert aws_key not in result.output


def test_cli_source_reads_the_agent_default_folder(tmp_path, example_logs):
    home = tmp_path / "home"
    shutil.copytree(example_logs / "codex", home / ".codex" / "sessions")
    runner = CliRunner()
    env = {"HOME": str(home), "CODEX_HOME": ""}
    out = tmp_path / "o" / "sessions.parquet"
    result = runner.invoke(main, ["ingest", "--source", "codex", "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    formats = json.loads((out.parent / "report.json").read_text())["formats"]
    assert list(formats) == ["codex"] and formats["codex"]["sessions_kept"] >= 1
    result = runner.invoke(main, ["ingest", "--source", "claude", "-o", str(out)], env=env)
    assert result.exit_code == 1 and "no log folder of 'claude'" in result.output


def test_cli_inspect_text_lists_every_file_with_counts_and_reasons(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    broken = '{"messages": [broken\n'
    (logs / "chat.jsonl").write_text(json.dumps(good) + "\n" + broken + json.dumps(good) + "\n" + broken * 10)
    (logs / "blob.bin").write_bytes(b"\x00\x01\x02\xff" * 10)
    result = CliRunner().invoke(main, ["inspect", str(logs)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{logs / 'blob.bin'}\tunknown\tsessions=0\tturns=0\ttool_calls=0\trecords=1",
        "  1 record rejected (whole file): binary data, not a transcript",
        f"{logs / 'chat.jsonl'}\topenai-chat\tsessions=2\tturns=4\ttool_calls=0\trecords=13",
        "  11 records rejected (lines 2, 4, 5, 6, 7, 8, 9, 10, ...): invalid JSON: Expecting value",
    ]
    assert not list(tmp_path.glob("**/*.parquet")) and not list(tmp_path.glob("**/report.json"))


def test_sessions_a_chat_template_refuses_are_filtered_with_the_reason(tmp_path, example_logs):
    refusing = save_tiny_tokenizer(tmp_path / "tok", "{{ raise_exception('this template renders nothing') }}")
    out = tmp_path / "out" / "sessions.parquet"
    result = CliRunner().invoke(main, ["ingest", str(example_logs / "openai-chat"), "-o", str(out),
                                       "--tokenizer", str(refusing)])
    assert result.exit_code == 0, result.output
    totals = json.loads((out.parent / "report.json").read_text())["totals"]
    assert totals["sessions_kept"] == 0 and totals["records_rejected"] == 0
    reason = "chat template cannot render it: this template renders nothing"
    assert totals["filtered_by_reason"] == {reason: totals["records"]} and totals["records"] == 5
    assert pl.read_parquet(out).height == 0


def test_cli_unwritable_output_and_broken_links_are_clean_errors(tmp_path, example_logs):
    logs = tmp_path / "logs"
    shutil.copytree(example_logs / "sharegpt", logs)
    (logs / "broken.jsonl").symlink_to(tmp_path / "nowhere")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(logs), "-o", str(blocker / "sessions.parquet")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{blocker / 'sessions.parquet'}: cannot write there ({blocker}: File exists)" in result.output
    out = tmp_path / "out" / "sessions.parquet"
    result = runner.invoke(main, ["ingest", str(logs), "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out.parent / "report.json").read_text())
    assert report["rejections"] == [{"file": str(logs / "broken.jsonl"), "line": 0,
                                     "reason": f"dangling symbolic link (to {tmp_path / 'nowhere'}, which does "
                                               "not exist)"}]
    assert report["totals"]["sessions_kept"] == 2


def test_json_nested_deeper_than_python_can_follow_is_rejected_not_a_crash(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    logs.mkdir()
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    deep = "[" * 200_000 + "]" * 200_000
    (logs / "chats.jsonl").write_text(json.dumps(chat) + "\n" + deep + "\n" + json.dumps(chat) + "\n")
    (logs / "deep.json").write_text('{"messages": ' + deep + "}")
    out = tmp_path / "out" / "sessions.parquet"
    report = ingest([str(logs)], out, IngestOptions())
    assert report.rejections == [
        {"file": str(logs / "chats.jsonl"), "line": 2, "reason": "invalid JSON: nested too deeply"},
        {"file": str(logs / "deep.json"), "line": 0,
         "reason": "malformed or truncated JSON (line 1, column 1: nested too deeply)"},
    ]
    assert report.totals()["records"] == 4 and report.totals()["sessions_kept"] == 2

    def too_deep(*args):  # values that parse but are too deep for redaction's recursion
        raise RecursionError

    monkeypatch.setattr("logminer.ingest.pipeline.process_session", too_deep)
    report = ingest([str(logs / "chats.jsonl")], out, IngestOptions())
    totals = report.totals()
    assert (totals["records"], totals["records_kept"], totals["records_rejected"]) == (3, 0, 3)
    assert totals["rejected_by_reason"] == {"invalid JSON: nested too deeply": 1,
                                            "values nested too deeply to process": 2}


def test_progress_bar_moves_by_every_input_byte_once(example_logs, monkeypatch):
    from logminer.commands import ingest as commands
    from logminer.ingest.pipeline import input_sizes
    from logminer.reading.detect import read_inputs

    moves: list[int] = []

    class Bar:
        def __init__(self, total, **options):
            self.total = total

        def update(self, size):
            moves.append(size)

        def close(self):
            moves.append(-1)

    monkeypatch.setattr("tqdm.tqdm", Bar)
    advance, close = commands._progress([str(example_logs)], "ingest")
    sources = list(dict.fromkeys(path for path, _, _ in read_inputs([str(example_logs)])))
    for source in sources:
        advance(source)
    close()
    assert moves[-1] == -1 and len(moves) == len(sources) + 1
    assert sum(moves[:-1]) == sum(input_sizes([str(example_logs)]).values())
    folder = next(s for s in sources if s.endswith("opencode/storage"))  # a folder source: all its files' bytes
    expected = sum(size for path, size in input_sizes([folder]).items())
    assert moves[sources.index(folder)] == expected

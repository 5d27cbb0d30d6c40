"""Property-based fuzzing of every reader: random bytes, mutated JSON lines and mutated example logs never make an
exception escape detect + parse, and the records of the events add up."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logminer.reading.detect import read_inputs
from logminer.reading.registry import FORMAT_MODULES, load_formats
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "logs"
# formats whose record is every non-blank line
JSONL_BY_LINE = {"claude-code", "codex", "claude-code-hooks", "pi", "kimi-code", "antigravity", "goose-jsonl"}
FUZZ = settings(max_examples=int(os.environ.get("LOGMINER_FUZZ_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_inputs() -> dict[str, list[Path]]:
    """Example files and folder-format folders grouped by the format module that reads them."""
    by_format: dict[str, set[str]] = {}
    for path, fmt, _ in read_inputs([str(EXAMPLES)]):
        if fmt:
            by_format.setdefault(fmt, set()).add(path)
    return {name: sorted(Path(p) for p in paths) for name, paths in by_format.items()}


EXAMPLE_INPUTS = example_inputs()
MODULES = {fmt.name: fmt for fmt in load_formats()}


def events_of(path: Path) -> list[tuple[str, str | None, object]]:
    events = list(read_inputs([str(path)]))
    for _, _, event in events:
        assert isinstance(event, (Session, Skipped, Rejected))
        assert event.records >= 0
    return events


def check_line_accounting(path: Path, events) -> None:
    fmts = {fmt for _, fmt, _ in events}
    if len(fmts) == 1 and fmts <= JSONL_BY_LINE and path.is_file():
        try:
            data = SourceFile.open(path).data
        except SourceError:
            return
        lines = sum(1 for line in data.split(b"\n") if line.strip())
        assert sum(e.records for _, _, e in events) == lines, path


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_every_registered_format_has_an_example():
    assert set(MODULES) == {m.name for m in load_formats()} and len(MODULES) == len(FORMAT_MODULES)
    # openclaw-db hands its events to the Pi/OpenClaw JSONL reader (its example comes with that reader);
    # agent-index only acknowledges search indexes, it has no sessions to show (test_agent_indexes)
    missing = {name for name in MODULES if name not in EXAMPLE_INPUTS} - {"bfcl", "swe-bench", "openclaw-db",
                                                                          "agent-index"}
    assert not missing, f"formats without an example log: {missing}"
    holdout = EXAMPLES.parent / "holdout"  # the two eval formats have their examples beside the logs
    skipped = {(fmt, type(event).__name__) for _, fmt, event in read_inputs([str(holdout)])}
    assert skipped == {("bfcl", "Skipped"), ("swe-bench", "Skipped")}


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_never_escape(scratch, data):
    path = scratch / "random.bin"
    path.write_bytes(data)
    events = events_of(path)
    try:
        has_text = bool(SourceFile.open(path).text.strip())
    except SourceError:
        has_text = True  # undecodable bytes must come back as a rejection
    assert sum(e.records for _, _, e in events) >= (1 if has_text else 0)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "type", "message", "tool_calls", "id", "messages", "sessionId",
                         "payload", "timestamp", "uuid", "parentUuid", "name", "arguments", "trajectory"]),
        children, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(lines=st.lists(JSON_VALUES, min_size=1, max_size=8), cut=st.integers(0, 50))
def test_mutated_json_lines_never_escape(scratch, lines, cut):
    text = "\n".join(json.dumps(v) for v in lines)
    path = scratch / "lines.jsonl"
    path.write_text(text[: max(1, len(text) - cut)])
    assert sum(e.records for _, _, e in events_of(path)) >= 1  # non-blank input is never silently dropped


def _mutate(data: bytes, operation: str, position: float, payload: bytes) -> bytes:
    at = int(position * len(data))
    if operation == "truncate":
        return data[:at]
    if operation == "flip" and data:
        at = min(at, len(data) - 1)
        return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:]
    if operation == "insert":
        return data[:at] + payload + data[at:]
    if operation == "drop_line":
        lines = data.split(b"\n")
        del lines[min(int(position * len(lines)), len(lines) - 1)]
        return b"\n".join(lines)
    if operation == "duplicate_line":
        lines = data.split(b"\n")
        index = min(int(position * len(lines)), len(lines) - 1)
        return b"\n".join(lines[: index + 1] + lines[index:])
    return data


MUTATIONS = st.tuples(
    st.sampled_from(["truncate", "flip", "insert", "drop_line", "duplicate_line"]),
    st.floats(0, 1),
    st.sampled_from([b"\x00\xff\xfe", b"{", b"}\n{\"type\": 1}\n", b"\n\n", b"\xc3(", b'"', b"[1,2", b"\r\n"]),
)


@pytest.mark.parametrize("fmt", sorted(EXAMPLE_INPUTS))
@FUZZ
@given(mutation=MUTATIONS)
def test_mutated_examples_never_escape(scratch, fmt, mutation):
    original = EXAMPLE_INPUTS[fmt][0]
    target = scratch / fmt / original.name
    shutil.rmtree(scratch / fmt, ignore_errors=True)
    if original.is_dir():
        shutil.copytree(original, target)
        files = sorted(p for p in target.rglob("*") if p.is_file())
        victim = files[int(mutation[1] * (len(files) - 1))]
    else:
        target.parent.mkdir(parents=True)
        victim = target
        shutil.copyfile(original, victim)
    victim.write_bytes(_mutate(victim.read_bytes(), *mutation))
    events = events_of(target)
    check_line_accounting(target, events)
    if target.is_file() and MODULES[fmt].unit == "file":  # the format's own parser too, even when an earlier format
        # now claims the file (database formats read a snapshot, not the bytes: detect above already ran them)
        module = MODULES[fmt]
        try:
            source = SourceFile.open(target)
        except SourceError:
            return
        if module.sniff(source):
            parsed = list(module.parse(source))
            assert all(isinstance(e, (Session, Skipped, Rejected)) for e in parsed)


def test_unmutated_examples_account_by_line():
    for fmt, paths in EXAMPLE_INPUTS.items():
        for path in paths:
            events = events_of(path)
            check_line_accounting(path, events)
            assert not [e for _, _, e in events if isinstance(e, Rejected)], path  # the bundled logs are clean
            if fmt != "claude-code-hooks":  # hook logs are recognised and skipped, never sessions
                assert any(isinstance(e, Session) for _, _, e in events), path


@FUZZ
@given(fmt=st.sampled_from(sorted(EXAMPLE_INPUTS)), mutation=MUTATIONS, min_turns=st.integers(0, 6))
def test_ingest_buckets_add_up_on_mutated_examples(scratch, fmt, mutation, min_turns):
    from logminer.ingest.pipeline import IngestOptions, ingest_rows
    from logminer.ingest.report import IngestReport

    original = EXAMPLE_INPUTS[fmt][0]
    target = scratch / "ingest" / original.name
    shutil.rmtree(scratch / "ingest", ignore_errors=True)
    if original.is_dir():
        shutil.copytree(original, target)
        victim = sorted(p for p in target.rglob("*") if p.is_file())[0]
    else:
        target.parent.mkdir(parents=True)
        shutil.copyfile(original, target)
        victim = target
    victim.write_bytes(_mutate(victim.read_bytes(), *mutation))
    expected = sum(e.records for _, _, e in events_of(target))
    report = IngestReport()
    rows = list(ingest_rows([str(target)], IngestOptions(min_turns=min_turns), report))
    totals = report.totals()
    assert totals["records"] == expected
    assert totals["records"] == totals["records_kept"] + totals["records_filtered"] + totals["records_rejected"]
    assert len(rows) == totals["sessions_kept"]

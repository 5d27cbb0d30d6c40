"""Property tests: the agent-transcript readers never crash on damaged input and their records add up."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logminer.formats import (
    aider,
    bfcl,
    mini_swe_agent,
    openhands,
    openhands_v1,
    plain_text,
    qwen_code,
    swe_agent,
    swebench,
)
from logminer.schema import Rejected, Session, Skipped
from logminer.sources import SourceFile

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
QWEN_JSONL = EXAMPLES / "logs/qwen-code/projects/-home-dev-weather-cli/chats/0f3a9c1e-7b2d-4e8f-9a6b-5c4d3e2f1a0b.jsonl"
# (reader, fixture, how records are counted: "nonblank" lines (JSONL), "all" lines (aider, text), None: items)
CASES = [
    (swe_agent, EXAMPLES / "logs/swe-agent/acme__widgets-42.traj", None),
    (mini_swe_agent, EXAMPLES / "logs/mini-swe-agent/gizmo_version_flag.traj.json", None),
    (openhands, EXAMPLES / "logs/openhands/slugify_events.json", None),
    (openhands, EXAMPLES / "logs/openhands/eval_output.jsonl", "nonblank"),
    (openhands_v1, EXAMPLES / "logs/openhands-v1/count_lines.jsonl", "nonblank"),
    (qwen_code, QWEN_JSONL, "nonblank"),
    (aider, EXAMPLES / "logs/aider/.aider.chat.history.md", "all"),
    (swebench, EXAMPLES / "holdout/swebench_instances.jsonl", "nonblank"),
    (swebench, EXAMPLES / "holdout/swebench_instance_images.txt", "nonblank"),
    (bfcl, EXAMPLES / "holdout/bfcl_simple.json", "nonblank"),
    (plain_text, EXAMPLES / "logs/plain-text/release_notes.txt", "all"),
]
FIXTURES = {path: path.read_bytes() for _, path, _ in CASES}


def damage(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    """Truncate at `cut` (modulo the length) and overwrite some bytes: the shapes real corruption takes."""
    damaged = bytearray(data[: cut % (len(data) + 1)])
    for position, value in flips:
        if damaged:
            damaged[position % len(damaged)] = value
    return bytes(damaged)


def events_of(reader, data: bytes, name: str) -> list:
    return list(reader.parse(SourceFile(name, data)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(range(len(CASES))), cut=st.integers(min_value=0, max_value=1 << 16),
       flips=st.lists(st.tuples(st.integers(min_value=0, max_value=1 << 16), st.integers(0, 255)), max_size=4))
def test_damaged_fixtures_never_crash_and_records_add_up(case, cut, flips):
    reader, path, unit = CASES[case]
    data = damage(FIXTURES[path], cut, flips)
    events = events_of(reader, data, path.name)
    assert all(isinstance(event, (Session, Skipped, Rejected)) for event in events)
    assert all(event.records >= 0 for event in events)
    records = sum(event.records for event in events)
    if unit == "nonblank":
        assert records == sum(1 for line in data.split(b"\n") if line.strip())
    elif unit == "all":
        assert records == (len(data.removesuffix(b"\n").split(b"\n")) if data else 0)
    elif data.strip():
        assert events, "a non-empty file must give at least one event"


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=512))
def test_random_bytes_are_sniffed_safely(data):
    source = SourceFile("blob", data)
    for reader, _, _ in CASES:
        if reader.sniff(source):
            assert all(isinstance(event, (Session, Skipped, Rejected)) for event in reader.parse(source))

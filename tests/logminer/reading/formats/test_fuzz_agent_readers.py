"""Property tests: the agent-transcript readers never crash on damaged input and their records add up."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logminer.reading.formats import (
    aider,
    bfcl,
    cline,
    gemini_cli,
    mini_swe_agent,
    opencode,
    openhands,
    openhands_v1,
    pi,
    plain_text,
    qwen_code,
    swe_agent,
    swebench,
)
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

EXAMPLES = Path(__file__).resolve().parents[4] / "examples"
QWEN_JSONL = EXAMPLES / "logs/qwen-code/projects/-home-dev-weather-cli/chats/0f3a9c1e-7b2d-4e8f-9a6b-5c4d3e2f1a0b.jsonl"
GEMINI_CHATS = EXAMPLES / "logs/gemini-cli/tmp/c3f9c3f9/chats"
# (reader, fixture, how records are counted: "nonblank" lines (JSONL), "all" lines (aider, text), None: items)
CASES = [
    (swe_agent, EXAMPLES / "logs/swe-agent/acme__widgets-42.traj", None),
    (mini_swe_agent, EXAMPLES / "logs/mini-swe-agent/gizmo_version_flag.traj.json", None),
    (openhands, EXAMPLES / "logs/openhands/slugify_events.json", None),
    (openhands, EXAMPLES / "logs/openhands/eval_output.jsonl", "nonblank"),
    (openhands_v1, EXAMPLES / "logs/openhands-v1/count_lines.jsonl", "nonblank"),
    (qwen_code, QWEN_JSONL, "nonblank"),
    (pi, next((EXAMPLES / "logs/pi").rglob("*.jsonl")), "nonblank"),
    (pi, next((EXAMPLES / "logs/openclaw").rglob("*.jsonl")), "nonblank"),
    (gemini_cli, next(GEMINI_CHATS.glob("session-*.jsonl")), "nonblank"),
    (gemini_cli, next(GEMINI_CHATS.glob("session-*.json")), None),
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


KEYS = ["role", "content", "tool_calls", "tool_call_id", "tool_call_ids", "is_demo", "function", "arguments", "name",
        "id", "action", "observation", "args", "extras", "cause", "source", "tool_call_metadata", "model_response",
        "kind", "llm_message", "tool_call", "llm_response_id", "thought", "uuid", "parentUuid", "sessionId", "type",
        "message", "parts", "text", "functionCall", "functionResponse", "response", "instance_id", "history",
        "messages", "question", "timestamp", "reasoning_content", "observation", "state", "status", "input",
        "$set", "$rewindTo", "toolCalls", "result", "thoughts", "parentId", "toolCallId", "toolName", "summary",
        "firstKeptEntryId", "firstKeptEntryIndex", "customType", "projectHash", "kind", "version", "isError"]
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(
    ["user", "assistant", "tool", "system", "exit", "message", "run", "finish", "ActionEvent", "ObservationEvent",
     "MessageEvent", "tool_result", "text", "```bash\nls\n```", "<returncode>0</returncode>", "{bad", "{}", "a__b-1",
     "session", "toolResult", "toolCall", "bashExecution", "compaction", "custom_message", "gemini", "info", "a", "b"])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                                          max_size=5), max_leaves=12)


def wrappers(value):
    """The same random value placed where each document format expects its records."""
    return [
        (swe_agent, {"history": value, "trajectory": value, "replay_config": value, "info": value}),
        (mini_swe_agent, {"trajectory_format": "mini-swe-agent-1", "messages": value, "info": value}),
        (openhands, value if isinstance(value, list) else [value]),
        (gemini_cli, {"sessionId": "s", "projectHash": "h", "messages": value}),
    ]


@settings(max_examples=60, deadline=None)
@given(value=st.lists(JSON, min_size=1, max_size=4))
def test_random_shapes_in_documents_never_escape(value):
    for reader, document in wrappers(value):
        data = json.dumps(document).encode()
        events = list(reader.parse(SourceFile("doc.json", data)))
        assert events and all(isinstance(event, (Session, Skipped, Rejected)) for event in events)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(JSON, min_size=1, max_size=5))
def test_random_shapes_in_json_lines_never_escape(lines):
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    for reader in (openhands, openhands_v1, qwen_code, pi, gemini_cli, swebench, bfcl):
        events = list(reader.parse(SourceFile("lines.jsonl", data)))
        assert all(isinstance(event, (Session, Skipped, Rejected)) for event in events)
        # a file opening with `[` is one JSON document, counted by items; so is a one-line SWE-bench dict of columns
        # ({"instance_id": [...], ...}, a datasets export), counted by instances
        columns = reader is swebench and len(lines) == 1 and isinstance(lines[0], dict) and isinstance(
            lines[0].get("instance_id"), list)
        if not data.lstrip().startswith(b"[") and not columns:
            assert sum(event.records for event in events) == len(lines)


@settings(max_examples=30, deadline=None)
@given(files=st.lists(JSON, min_size=1, max_size=4))
def test_random_shapes_in_folder_formats_never_escape(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("folders")
    task = root / "task"
    task.mkdir()
    (task / "api_conversation_history.json").write_text(json.dumps(files))
    (task / "ui_messages.json").write_text(json.dumps(files[0]))
    storage = root / "storage"
    layout = [("session/prj/ses.json", files[0]), ("message/ses/msg.json", files[-1]), ("part/msg/prt.json", files)]
    for relative, value in layout:
        path = storage / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    conversation = root / "conv"
    (conversation / "events").mkdir(parents=True)
    (conversation / "base_state.json").write_text(json.dumps(files[0]))
    for index, value in enumerate(files):
        (conversation / "events" / f"event-{index:05d}-0123abcd-0000.json").write_text(json.dumps(value))
    for module, folder in ((cline, task), (opencode, storage), (openhands_v1, conversation)):
        assert module.sniff_dir(str(folder))
        events = list(module.parse_dir(str(folder)))
        assert all(isinstance(event, (Session, Skipped, Rejected)) for event in events)

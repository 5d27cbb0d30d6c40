"""Property tests: the agent CLI readers (Copilot CLI, Kimi Code, Antigravity, Goose legacy, Continue) never crash
when any value of their example logs is replaced by arbitrary JSON, and their line records still add up."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logminer.reading.formats import antigravity, continue_dev, copilot_cli, goose_legacy, kimi_code
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped
from tests.logminer.reading.formats.test_fuzz_store_readers import JSON_VALUES

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "logs"
CASES = [  # (reader, example, records counted per non-blank line?)
    (copilot_cli, next((EXAMPLES / "copilot-cli").rglob("events.jsonl")), True),
    (kimi_code, next((EXAMPLES / "kimi-code").rglob("wire.jsonl")), True),
    (antigravity, EXAMPLES / "antigravity" / "steps.jsonl", True),
    (goose_legacy, next((EXAMPLES / "goose-jsonl").glob("*.jsonl")), True),
    (continue_dev, next((EXAMPLES / "continue").rglob("*.json")), False),
]
FUZZ = settings(max_examples=int(os.environ.get("LOGMINER_FUZZ_EXAMPLES", "25")) * 2, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def replace_somewhere(value, choice: int, new):
    """`value` with its choice-th (modulo the count) nested value replaced by `new`."""
    spots = []

    def walk(node, path):
        spots.append(path)
        if isinstance(node, dict):
            for key in node:
                walk(node[key], (*path, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*path, index))

    walk(value, ())
    path = spots[choice % len(spots)]
    if not path:
        return new
    target = value
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return value


@FUZZ
@given(case=st.sampled_from(range(len(CASES))), line=st.integers(0, 1000), choice=st.integers(0, 10_000),
       new=JSON_VALUES)
def test_arbitrary_values_never_crash_and_lines_add_up(case, line, choice, new):
    reader, path, by_line = CASES[case]
    text = path.read_text()
    if by_line:
        lines = text.splitlines()
        index = line % len(lines)
        lines[index] = json.dumps(replace_somewhere(json.loads(lines[index]), choice, new))
        data = ("\n".join(lines) + "\n").encode()
    else:
        data = json.dumps(replace_somewhere(json.loads(text), choice, new)).encode()
    events = list(reader.FORMAT.parse(SourceFile(str(path), data)))
    assert all(isinstance(e, (Session, Skipped, Rejected)) and e.records >= 0 for e in events)
    if by_line:
        assert sum(e.records for e in events) == sum(1 for raw in data.split(b"\n") if raw.strip())
    else:
        assert events

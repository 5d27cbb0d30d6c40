"""Property tests: the agent CLI readers (Copilot CLI, Kimi Code, Antigravity, Goose legacy, Continue, Grok, Cline
CLI) never crash when any value of their example logs is replaced by arbitrary JSON, and their line records add up."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logminer.reading.formats import antigravity, cline_cli, continue_dev, copilot_cli, goose_legacy, grok, kimi_code
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
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


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


FOLDERS = [  # (reader, example folder, its file whose values are replaced, counted per non-blank line?)
    (grok, next((EXAMPLES / "grok").rglob("chat_history.jsonl")).parent, "chat_history.jsonl", True),
    (cline_cli, next((EXAMPLES / "cline-cli").rglob("*.messages.json")).parent, None, False),
]


@FUZZ
@given(case=st.sampled_from(range(len(FOLDERS))), line=st.integers(0, 1000), choice=st.integers(0, 10_000),
       new=JSON_VALUES)
def test_folder_readers_survive_arbitrary_values(tmp_path_factory, case, line, choice, new):
    reader, folder, name, by_line = FOLDERS[case]
    target = tmp_path_factory.mktemp("fuzz") / folder.name
    shutil.copytree(folder, target)
    victim = target / (name or f"{folder.name}.messages.json")
    if by_line:
        lines = victim.read_text().splitlines()
        index = line % len(lines)
        lines[index] = json.dumps(replace_somewhere(json.loads(lines[index]), choice, new))
        victim.write_text("\n".join(lines) + "\n")
    else:
        victim.write_text(json.dumps(replace_somewhere(json.loads(victim.read_text()), choice, new)))
    events = list(reader.FORMAT.parse_dir(str(target)))
    assert all(isinstance(e, (Session, Skipped, Rejected)) and e.records >= 0 for e in events)
    from_victim = sum(e.records for e in events if e.source_file == str(victim))
    if by_line:
        assert from_victim == sum(1 for raw in victim.read_bytes().split(b"\n") if raw.strip())

"""The planted corpus (every kind in every shape, personal data, file names carrying keys) through `ingest`,
`split` and `corpus`: no planted secret in any output file (parquet, txt, report.json, manifest.json,
corpus_manifest.json, rejected.parquet), and every survivor (ids, hashes, digests, code) still there."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from logminer.corpus import build_corpus, load_recipe
from logminer.ingest.pipeline import IngestOptions, ingest
from logminer.split.pipeline import SplitJob, run_split
from tests.logminer.ingest import planted_secrets as planted

CASES = planted.cases(seed=7)
PERSONAL = planted.personal_cases(seed=7)
FILLER = ("The build passed after the parser fix; next the renderer gets a test for empty turns, then the "
          "release notes. ")


def _strings(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.append(str(key))
            _strings(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _strings(item, out)


def readable(path: Path) -> str:
    """Every string a user can read out of an output file: parquet cells (nested too), JSON keys and values
    (decoded), text as is."""
    if path.suffix == ".parquet":
        strings: list[str] = []
        _strings(pl.read_parquet(path).to_dicts(), strings)
        return "\n".join(strings)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        strings = [text]
        _strings(json.loads(text), strings)
        return "\n".join(strings)
    return text


def write_logs(folder: Path) -> Path:
    """OpenAI-chat JSONL: each session carries four cases, in a user turn, a tool call's arguments (as a value
    and under its variable name), a tool result and the tool definitions; file names carry keys after `_`."""
    prefixed = [case for case in CASES if case.planted.prefixed and case.shape == "prose"]
    folder.mkdir(parents=True)
    lines = []
    for number in range(0, len(CASES), 4):
        group = CASES[number:number + 4]
        text = [f"{FILLER}session {number}: {case.text}" for case in group] + [""] * (4 - len(group))
        messages = [
            {"role": "user", "content": text[0]},
            {"role": "assistant", "content": "running it", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": json.dumps(
                    {"cmd": text[1], "env": {group[0].planted.name: group[0].planted.value}})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": text[2]},
            {"role": "assistant", "content": f"{FILLER}{text[3]}"},
        ]
        tools = [{"type": "function", "function": {"name": "bash", "description": f"shell; {text[3]}"}}]
        lines.append(json.dumps({"messages": messages, "tools": tools}))
    personal = " ".join(text for _, text, _ in PERSONAL)
    survivors = " ".join(planted.SURVIVORS)
    lines.append(json.dumps({"messages": [{"role": "user", "content": f"{FILLER}{personal}"},
                                          {"role": "assistant", "content": f"{FILLER}{survivors}"}]}))
    # a broken line, and a JSON file of an unknown shape whose keys are secrets (its rejection reason quotes them)
    lines.append('{"messages": [{"role": "user", "content": "' + prefixed[2].planted.value)
    (folder / "odd.json").write_text(json.dumps({prefixed[0].planted.value: 1, "token": prefixed[1].planted.value,
                                                 "home": "/home/" + PERSONAL[3][2]}), encoding="utf-8")
    for index, case in enumerate(prefixed[3:6]):  # file names with a key after `_`
        sub = folder / f"run_{case.planted.value}"
        sub.mkdir()
        (sub / f"chat_{prefixed[6 + index].planted.value}.jsonl").write_text(lines[index] + "\n", encoding="utf-8")
    (folder / "chats.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def leaks_in(text: str) -> list[tuple[str, str]]:
    found = [(case.planted.kind, case.shape) for case in planted.leaked_cases(CASES, text)]
    return found + [(kind, name) for kind, _, name in PERSONAL if name in text]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("e2e")
    logs = write_logs(root / "logs")
    (root / "notes_text").mkdir()
    notes = root / "notes_text" / f"notes_{CASES[0].planted.value}.txt"
    notes.write_text("\n\n".join(f"{FILLER}{case.text}" for case in CASES[::9]) + "\n", encoding="utf-8")
    ingest([str(logs)], root / "ingested" / "sessions.parquet", IngestOptions())
    run_split(SplitJob(inputs=(str(logs),), out_dir=str(root / "split"), progress=False))
    recipe = root / "recipe.toml"
    key = [case for case in CASES if case.planted.prefixed and case.shape == "prose"][10].planted.value
    named = f"notes_{key}"  # a source named after a key: the manifest quotes names too
    recipe.write_text(f'[sources.logs]\nkind = "split"\npath = "{root / "split"}"\n'
                      f'[sources."{named}"]\nkind = "text"\npath = "{root / "notes_text"}"\n'
                      f'[slices.calibration]\nparts = [{{ source = "logs" }}, {{ source = "{named}" }}]\n',
                      encoding="utf-8")
    build_corpus(load_recipe(recipe), root / "corpus", progress=False)
    return root, logs


def test_the_inputs_hold_every_planted_secret(outputs):
    """The check below can fail: on the inputs it finds every planted case."""
    _, logs = outputs
    raw = "\n".join(readable(p) for p in sorted(logs.rglob("*.jsonl")))
    raw += "\n".join(str(p) for p in logs.rglob("*"))
    decoded = "\n".join(json.dumps(json.loads(line), ensure_ascii=False) for line in raw.splitlines()
                        if line.startswith("{") and line.endswith("}"))
    assert len(leaks_in(raw + decoded)) >= len(CASES) * 0.95


@pytest.mark.parametrize("stage", ["ingested", "split", "corpus"])
def test_no_planted_secret_in_any_output_file(outputs, stage):
    root, _ = outputs
    files = sorted(p for p in (root / stage).rglob("*") if p.is_file())
    names = {p.name for p in files}
    expected = {"ingested": {"sessions.parquet", "report.json"},
                "split": {"calibration.parquet", "manifest.json", "rejected.parquet", "eval.txt"},
                "corpus": {"calibration.txt", "corpus_manifest.json"}}[stage]
    assert expected <= names, names
    for path in files:
        assert leaks_in(readable(path)) == [], path


def test_rejections_are_reported_redacted(outputs):
    root, _ = outputs
    report = json.loads((root / "ingested" / "report.json").read_text())
    reasons = [r["reason"] for r in report["rejections"]]
    assert any("<SECRET:" in reason for reason in reasons), reasons
    rejected = pl.read_parquet(root / "split" / "rejected.parquet")
    assert rejected.height >= 2


def test_survivors_reach_the_outputs_intact(outputs):
    root, _ = outputs
    sessions = readable(root / "ingested" / "sessions.parquet")
    for value in planted.SURVIVORS:
        assert value in sessions, value
    assert sessions.count("<SECRET:") >= len(CASES)

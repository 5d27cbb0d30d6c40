"""The model card's numbers are the eval record's, the imatrix's and the split's; the sources list carries each
file's sha256; foreign inputs are one clear error. (The card of a real eval run: tests/imatrix/llamacpp/test_agent_eval.py.)"""

from __future__ import annotations

import json

import polars as pl
import pytest

from calibkit.atomic import sha256_file
from imatrix.card import (
    LICENSE_PLACEHOLDER,
    CardError,
    CardInputs,
    render_card,
    write_card,
)
from imatrix.files.imatrix_file import write_gguf
from tests.imatrix.commands.test_files import build as build_imatrix
from tests.imatrix.llamacpp.test_agent_report import small_record


@pytest.fixture
def record_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(small_record()))
    return path


def _table(card: str, heading: str) -> list[list[str]]:
    section = card.split(heading, 1)[1].strip().split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()[2:]]


def test_quant_table_numbers_equal_the_record(record_file):
    record = json.loads(record_file.read_text())
    card = render_card(CardInputs(record_file, base_model="org/base-1b", quantized_by="me"))
    assert card.startswith(f"---\nbase_model: org/base-1b\nquantized_by: me\nlicense: {LICENSE_PLACEHOLDER}\n")
    assert "\n# base-1b GGUF\n" in card
    rows = _table(card, "## Quants\n")
    assert [r[0] for r in rows] == ["ref.gguf (reference)", "q8.gguf", "q2.gguf"]
    for row, model in zip(rows, record["models"]):
        overall = record["metrics"][model["file"]]["all"]
        assert row[1:5] == [model["type"], f"{model['size_gib']:.3f}", f"{model['bpw']:.2f}", f"{overall['ppl']:.4f}"]
    q2 = record["metrics"]["q2.gguf"]["all"]
    assert rows[2][5:] == [f"{q2['median_kld']:.4f}", f"{q2['same_top_pct']:.2f}", "50.0% (1/2)"]
    assert rows[0][5:] == ["—", "—", "—"]
    roles = _table(card, "Mean KLD by role (95% CI, bootstrap over sessions):\n")
    assert [r[0] for r in roles] == ["q8.gguf", "q2.gguf"]
    assert roles[1][2].startswith(f"{record['metrics']['q2.gguf']['assistant']['mean_kld']:.4f} [")
    assert f"| eval record | `run.json` | `{sha256_file(record_file)}` |" in card


def test_imatrix_and_split_facts_come_from_their_files(record_file, tmp_path):
    imatrix = tmp_path / "agents.imatrix.gguf"
    write_gguf(build_imatrix(), imatrix)
    split = tmp_path / "split"
    split.mkdir()
    manifest = {"counts": {"calibration": 3, "validation": 1, "eval": 2, "contaminated": 4, "duplicates": 5},
                "tokens": {"calibration": 900, "validation": 100, "eval": 200}, "options": {"split": {"seed": 7}},
                "holdout": [{"path": "/x/humaneval.jsonl"}]}
    (split / "manifest.json").write_text(json.dumps(manifest))
    pl.DataFrame({"agent": ["codex", "claude", "codex"], "tokens": [100, 500, 300]}).write_parquet(
        split / "calibration.parquet")
    card = render_card(CardInputs(record_file, imatrix, split / "manifest.json", alpha=0.25))
    assert "- Calibration split: 3 sessions, 900 tokens; validation 1 / 100; eval 2 / 200" in card and "seed 7" in card
    assert "- Calibration sources: claude (1 sessions, 500 tokens), codex (2 sessions, 400 tokens)." in card
    assert "Held out: humaneval.jsonl; 4 sessions removed as contaminated, 5 as near-duplicates." in card
    assert f"(sha256 `{sha256_file(imatrix)}`): 2 chunks of 512 tokens from calib.txt." in card
    assert "α = 0.25" in card and "not the eval split beside the given manifest" in card
    assert f"| calibration documents | `calibration.parquet` | `{sha256_file(split / 'calibration.parquet')}` |" in card


def test_write_card_copies_the_plot_and_links_it(record_file, tmp_path):
    plot = tmp_path / "run.png"
    plot.write_bytes(b"\x89PNG fake bytes")
    target = write_card(CardInputs(record_file), tmp_path / "out", plot)
    assert target == tmp_path / "out" / "README.md"
    assert (tmp_path / "out" / "eval.png").read_bytes() == plot.read_bytes() and "(eval.png)" in target.read_text()
    assert "eval.png" not in write_card(CardInputs(record_file), tmp_path / "bare").read_text()


def test_foreign_inputs_are_one_clear_error(record_file, tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"format": "something-else/1"}')
    with pytest.raises(CardError, match="other.json: not an `imatrix eval` record"):
        render_card(CardInputs(other))
    with pytest.raises(CardError, match="not a GGUF imatrix"):
        render_card(CardInputs(record_file, imatrix=record_file))
    bad_manifest = tmp_path / "manifest.json"
    bad_manifest.write_text("{}")
    with pytest.raises(CardError, match="not a logminer split manifest"):
        render_card(CardInputs(record_file, split_manifest=bad_manifest))

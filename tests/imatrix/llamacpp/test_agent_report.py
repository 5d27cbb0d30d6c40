"""The eval report's Markdown, CSV and files, from a small record built with the evaluator's own summary functions
(stats.summary / stats.bootstrap / tool_calls.agreement) on synthetic per-token scores: no model needed."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from imatrix.llamacpp import agent_report, scoring, stats, tool_calls
from imatrix.llamacpp.agent_eval import FORMAT

KINDS = ["separator", "assistant", "tool_call"]


def small_record() -> dict:
    """Two sessions of 6 scored tokens each (assistant, then tool_call), a reference and two quants, two call sites."""
    docs = np.array([0] * 7 + [1] * 6, np.int32)
    kind = np.array([0, 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2], np.int16)
    stream = scoring.TokenStream(np.zeros(13, np.int32), docs, kind, KINDS, np.zeros(13, np.int64))
    target = np.arange(1, 13)
    scores = scoring.TokenScores(target, np.log(np.arange(2, 14, dtype=np.float64)))
    scores.kld["q8.gguf"] = np.linspace(0.01, 0.12, 12)
    scores.kld["q2.gguf"] = np.linspace(0.2, 1.3, 12)
    for name in ("q8.gguf", "q2.gguf"):
        scores.same_top[name] = scores.kld[name] < 0.5
        scores.nll[name] = scores.reference_nll + scores.kld[name]
    names = ["ref.gguf", "q8.gguf", "q2.gguf"]
    masks = stats.kind_masks(stream, scores)
    metrics = {name: {k: stats.summary(scores, None if i == 0 else name, mask) for k, mask in masks.items()}
               for i, name in enumerate(names)}
    sites = [tool_calls.CallSite(0, 10, 20, ("ls", {"p": "."})), tool_calls.CallSite(1, 5, 9, None)]
    results = [tool_calls.CallResult(sites[0], {"ref.gguf": ("ls", {"p": "."}), "q8.gguf": ("ls", {"p": "."}),
                                                "q2.gguf": ("cat", {})}),
               tool_calls.CallResult(sites[1], {"ref.gguf": None, "q8.gguf": None, "q2.gguf": None})]
    agreement = {name: tool_calls.agreement(results, "ref.gguf", name) for name in names}
    bootstrap = stats.bootstrap(stream, scores, names[1:], 2, replicates=50, seed=0)
    models = [{"file": name, "type": kind_, "size_gib": size, "bpw": bpw, "sha256": "0" * 64, "size_bytes": 1}
              for name, kind_, size, bpw in (("ref.gguf", "Q8_0", 0.25, 8.5), ("q8.gguf", "Q8_0", 0.25, 8.5),
                                             ("q2.gguf", "IQ2_XS", 0.07, 2.31))]
    return {"format": FORMAT, "llama_cpp": "llama.cpp b11434", "options": {"ctx_size": 16},
            "data": {"file": "eval.parquet", "sha256": "1" * 64, "documents": 2, "unit": "session",
                     "documents_with_spans": 2, "tokens": 13, "scored_tokens": 12, "windows": 1},
            "reference": "ref.gguf", "models": models, "metrics": metrics,
            "tool_calls": {"sites": 2, "agreement": agreement, "calls": []}, "bootstrap": bootstrap}


def test_small_record_summaries_are_the_hand_computed_ones():
    record = small_record()
    q2 = record["metrics"]["q2.gguf"]
    assert q2["all"]["n_tokens"] == 12 and q2["assistant"]["n_tokens"] == 6 and q2["tool_call"]["n_tokens"] == 6
    assert q2["all"]["mean_kld"] == pytest.approx(0.75)  # mean of linspace(0.2, 1.3, 12)
    assert q2["all"]["same_top_pct"] == pytest.approx(100 * 3 / 12)  # 0.2, 0.3, 0.4 are below 0.5
    assert record["metrics"]["ref.gguf"]["all"]["ppl"] == pytest.approx(np.exp(np.log(np.arange(2, 14)).mean()))
    assert record["tool_calls"]["agreement"]["q2.gguf"]["agree_reference"] == 1  # both write no call at site 2
    assert record["tool_calls"]["agreement"]["q8.gguf"]["match_logged"] == 1


def test_csv_has_one_row_per_model_and_kind_with_the_record_numbers():
    record = small_record()
    rows = list(csv.DictReader(io.StringIO(agent_report.format_csv(record))))
    assert [(r["file"], r["kind"]) for r in rows] == [
        (name, kind) for name in ("ref.gguf", "q8.gguf", "q2.gguf") for kind in ("all", "assistant", "tool_call")]
    for row in rows:
        metrics = record["metrics"][row["file"]][row["kind"]]
        assert int(row["n_tokens"]) == metrics["n_tokens"] and float(row["ppl"]) == metrics["ppl"]
        if row["file"] == "ref.gguf":
            assert row["mean_kld"] == row["mean_kld_ci_low"] == ""
        else:
            ci = agent_report.interval(record, row["file"], "mean_kld", row["kind"])
            assert float(row["mean_kld"]) == metrics["mean_kld"] and float(row["mean_kld_ci_low"]) == ci["ci_low"]


def test_markdown_table_rows_carry_the_record_numbers():
    record = small_record()
    text = agent_report.format_markdown(record)
    q2 = record["metrics"]["q2.gguf"]["all"]
    row = next(line for line in text.splitlines() if line.startswith("| q2.gguf | IQ2_XS |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:6] == ["0.070", "2.310", f"{q2['ppl']:.4f}", f"{q2['mean_kld']:.4f}"]
    assert cells[9] == "1/2 (50.0%)" and cells[10] == "0/1 (0.0%)"
    assert "12 scored tokens in 1 windows of 16 tokens; 2 tool calls re-decoded" in text
    assert text.count("| q8.gguf | q2.gguf |") == len(record["bootstrap"]["paired"])


def test_write_report_writes_json_md_csv_and_png_that_match(tmp_path):
    record = small_record()
    written = agent_report.write_report(record, tmp_path / "run")
    assert [p.name for p in written] == ["run.json", "run.md", "run.csv", "run.png"]
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(json.dumps(record))
    assert (tmp_path / "run.md").read_text() == agent_report.format_markdown(record)
    assert (tmp_path / "run.csv").read_text() == agent_report.format_csv(record)
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert agent_report.plot_png(record) == (tmp_path / "run.png").read_bytes()  # deterministic
    assert [p.name for p in agent_report.write_report(record, tmp_path / "np", plot=False)] == [
        "np.json", "np.md", "np.csv"]

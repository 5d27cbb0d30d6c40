"""`logminer split | corpus` commands: dedup and decontamination thresholds set apart (the old single --threshold
still sets both), help that says how tokens are counted without a tokenizer, recipe source overrides, and the
summary table."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from logminer.cli import main
from logminer.commands.split import corpus, summary_table
from logminer.rendering.chat import count_tokens


@pytest.fixture
def captured_job(monkeypatch):
    """Run `logminer split` up to run_split and keep the job it was given."""
    from logminer.split import pipeline

    jobs = []

    def fake_run_split(job):
        jobs.append(job)
        raise pipeline.SplitError("stopped by the test")

    monkeypatch.setattr(pipeline, "run_split", fake_run_split)
    return jobs


@pytest.mark.parametrize("args, dedup, holdout", [
    ([], 0.7, 0.7),
    (["--dedup-threshold", "0.8"], 0.8, 0.7),
    (["--holdout-threshold", "0.5"], 0.7, 0.5),
    (["--threshold", "0.6"], 0.6, 0.6),
    (["--threshold", "0.6", "--holdout-threshold", "0.9"], 0.6, 0.9),
    (["--threshold", "0.6", "--dedup-threshold", "0.7"], 0.7, 0.6),
])
def test_thresholds_reach_dedup_and_decontamination(captured_job, tmp_path, args, dedup, holdout):
    result = CliRunner().invoke(main, ["split", "in.parquet", "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 1 and "stopped by the test" in result.output
    [job] = captured_job
    assert (job.dedup.threshold, job.decontamination.minhash_threshold) == (dedup, holdout)


def test_help_says_what_is_counted_and_hides_old_spellings():
    split_help = CliRunner().invoke(main, ["split", "--help"]).output
    assert "--dedup-threshold" in split_help and "--holdout-threshold" in split_help
    assert "--threshold " not in split_help and "word-and-punctuation" not in split_help
    assert "UTF-8 bytes / 4" in split_help
    corpus_help = CliRunner().invoke(main, ["corpus", "--help"]).output
    assert "UTF-8 bytes / 4" in corpus_help and "--source-path NAME=PATH" in corpus_help
    assert "--source " not in corpus_help
    # and that is what the code counts: ceil(bytes / 4), é being two bytes
    assert count_tokens(["abcd", "abcde", "é" * 3, ""]) == [1, 2, 2, 0]


def test_recipe_source_spellings_parse_alike(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("")
    common = [str(recipe), "-o", str(tmp_path / "out")]
    new = corpus.make_context("corpus", [*common, "--source-path", "logs=/x"]).params
    assert new == corpus.make_context("corpus", [*common, "--source", "logs=/x"]).params
    assert new["sources"] == ("logs=/x",)
    result = CliRunner().invoke(main, ["corpus", *common, "--source-path", "logs"])
    assert result.exit_code == 2 and "'logs' is not NAME=PATH" in result.output


def test_summary_table_lists_every_bucket_and_says_whether_it_adds_up():
    manifest = {
        "counts": {"calibration": 3, "validation": 1, "eval": 0, "duplicates": 2, "contaminated": 1, "rejected": 0,
                   "input_sessions": 7, "adds_up": True, "ingest_rejected_records": 4},
        "tokens": {"calibration": 900, "validation": 120, "eval": 0},
        "audit": {"cross_pairs_near": 0, "query_threshold": 0.6, "cross_pairs_at_threshold": 0, "threshold": 0.7,
                  "holdout_hits_calibration": 0},
    }
    lines = summary_table(manifest).splitlines()
    assert lines[1].split() == ["calibration", "3", "900"] and lines[3].split() == ["eval", "0", "0"]
    assert any(line.startswith("input") and "adds up: yes" in line for line in lines)
    assert any("4 input records filtered or rejected" in line for line in lines)
    assert lines[-1] == "note: eval empty (too few or too large groups for the ratios or budgets)"

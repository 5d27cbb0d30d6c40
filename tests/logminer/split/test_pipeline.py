"""Split: whole groups, ratios and budgets, 0 cross-split near-duplicates, accounting, determinism, CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from logminer.cli import main
from logminer.schema import Session, Turn, sessions_to_frame
from logminer.split.assign import OVER_BUDGET, SplitOptions, assign_splits, parse_ratios, parse_token_count
from logminer.split.pipeline import SplitError, SplitJob, run_split

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from dedup_throughput import planted_corpus, true_jaccard  # noqa: E402

OUTPUTS = ("calibration.parquet", "validation.parquet", "eval.parquet", "calibration.txt", "validation.txt",
           "eval.txt", "duplicates.parquet", "contaminated.parquet", "rejected.parquet", "manifest.json")


@pytest.fixture(scope="module")
def planted_sessions(tmp_path_factory) -> tuple[Path, object]:
    corpus = planted_corpus(docs=1200, near=150, exact=30, seed=11)
    sessions = [
        Session(session_id=f"s{i:05d}", agent="test-agent", source_file="planted.jsonl", line_start=i + 1,
                turns=[Turn("user", "Please fix the failing test."), Turn("assistant", text)],
                metadata={"repo": f"org/repo{i % 9}"})
        for i, text in enumerate(corpus.texts)
    ]
    sessions.append(Session(session_id="empty", agent="test-agent", source_file="planted.jsonl", turns=[]))
    path = tmp_path_factory.mktemp("planted") / "sessions.parquet"
    sessions_to_frame(sessions).write_parquet(path)
    return path, corpus


def read_split(out: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(out / f"{name}.parquet")


def test_parsers() -> None:
    assert parse_token_count("500k") == 500_000
    assert parse_token_count("1.5M") == 1_500_000
    assert parse_token_count("2000") == 2000
    with pytest.raises(ValueError):
        parse_token_count("lots")
    assert parse_ratios("8,1,1") == (0.8, 0.1, 0.1)
    with pytest.raises(ValueError):
        parse_ratios("0.5,0.5")


def test_groups_stay_whole_and_budgets_hold() -> None:
    keys = [f"g{i % 10}" for i in range(100)]
    tokens = [100] * 100  # every group: 1000 tokens
    by_ratio = assign_splits(keys, tokens, SplitOptions(ratios=(0.6, 0.2, 0.2), seed=3))
    for key in set(keys):
        assert len({s for k, s in zip(keys, by_ratio) if k == key}) == 1
    assert [by_ratio.count(n) for n in ("calibration", "validation", "eval")] == [60, 20, 20]
    budget = assign_splits(keys, tokens, SplitOptions(budgets=(3500, 1000, 1000)))
    assert budget.count("calibration") == 30 and budget.count("validation") == 10 and budget.count("eval") == 10
    assert budget.count(OVER_BUDGET) == 50
    open_eval = assign_splits(keys, tokens, SplitOptions(ratios=(0.8, 0.1, 0.1), budgets=(2000, 1000, None)))
    assert open_eval.count("calibration") == 20 and open_eval.count("eval") == 70


def test_planted_corpus_split(planted_sessions, tmp_path: Path) -> None:
    path, corpus = planted_sessions
    out = tmp_path / "out"
    manifest = run_split(SplitJob(inputs=(str(path),), out_dir=str(out), progress=False))
    counts = manifest["counts"]
    assert counts["input_sessions"] == 1201
    assert counts["adds_up"]
    assert counts["rejected"] == 1  # the session without turns
    assert counts["duplicates"] >= 30 + 140
    audit = manifest["audit"]
    assert audit["cross_pairs_at_threshold"] == 0 and audit["clean"]
    assert all(audit["query_threshold"] <= e["jaccard"] < 0.7 for e in audit["examples"])  # below: not duplicates
    split_of, rendered = {}, {}
    for name in ("calibration", "validation", "eval"):
        frame = read_split(out, name)
        assert frame.height == counts[name]
        assert frame["tokens"].sum() == manifest["tokens"][name]
        text = (out / f"{name}.txt").read_text(encoding="utf-8")
        assert text == "\n\n".join(frame["text"].to_list()) + "\n"
        split_of.update({int(sid[1:]): name for sid in frame["session_id"].to_list()})
        rendered.update({int(sid[1:]): text for sid, text in frame.select("session_id", "text").iter_rows()})
    duplicates = pl.read_parquet(out / "duplicates.parquet")
    assert set(duplicates["reason"].to_list()) <= {"exact_duplicate", "near_duplicate"}
    # every planted pair whose documents (as rendered) have true Jaccard >= 0.7 is in one cluster: never in two splits
    straddling = [(a, b) for a, b in corpus.near_pairs + corpus.exact_pairs
                  if a in split_of and b in split_of and split_of[a] != split_of[b]
                  and true_jaccard(rendered[a], rendered[b]) >= 0.7]
    assert straddling == []
    assert sum(counts[n] for n in ("calibration", "validation", "eval")) > 900


def test_group_by_repo_and_determinism(planted_sessions, tmp_path: Path) -> None:
    path, _ = planted_sessions
    runs = []
    for run in ("a", "b"):
        out = tmp_path / run
        run_split(SplitJob(inputs=(str(path),), out_dir=str(out), group_by="repo", progress=False))
        runs.append(out)
    for name in OUTPUTS:
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    seen: dict[str, str] = {}
    for name in ("calibration", "validation", "eval"):
        for metadata in read_split(runs[0], name)["metadata"].to_list():
            repo = json.loads(metadata)["repo"]
            assert seen.setdefault(repo, name) == name


def test_token_budget_respected(planted_sessions, tmp_path: Path) -> None:
    path, _ = planted_sessions
    out = tmp_path / "budget"
    from logminer.split.assign import SplitOptions as Options

    manifest = run_split(SplitJob(inputs=(str(path),), out_dir=str(out), progress=False,
                                  split=Options(budgets=(20_000, 5_000, 5_000))))
    assert 19_000 <= manifest["tokens"]["calibration"] <= 20_000
    assert manifest["tokens"]["validation"] <= 5_000 and manifest["tokens"]["eval"] <= 5_000
    assert manifest["counts"]["adds_up"]
    rejected = pl.read_parquet(out / "rejected.parquet")
    assert rejected.filter(pl.col("reason").str.contains("token budget")).height == manifest["counts"]["rejected"] - 1


def test_cli_split_and_errors(planted_sessions, tmp_path: Path) -> None:
    path, _ = planted_sessions
    runner = CliRunner()
    result = runner.invoke(main, ["split", str(path), "-o", str(tmp_path / "cli"), "--ratios", "0.7,0.15,0.15",
                                  "--calibration-tokens", "50k", "--seed", "5", "--strict", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "calibration" in result.output and "adds up: yes" in result.output
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["tokens"]["calibration"] <= 50_000 and manifest["options"]["split"]["seed"] == 5
    bad = runner.invoke(main, ["split", str(path), "-o", str(tmp_path / "x"), "--calibration-tokens", "many"])
    assert bad.exit_code == 2 and "not a token count" in bad.output
    missing = runner.invoke(main, ["split", str(tmp_path / "nope.parquet"), "-o", str(tmp_path / "y")])
    assert missing.exit_code == 1 and "nope.parquet" in missing.output and "Traceback" not in missing.output
    (tmp_path / "holdout.bin").write_bytes(b"\x00\x01\x02binary")
    bad_holdout = runner.invoke(main, ["split", str(path), "-o", str(tmp_path / "z"), "--holdout",
                                       str(tmp_path / "holdout.bin")])
    assert bad_holdout.exit_code == 1 and "holdout.bin" in bad_holdout.output
    assert not (tmp_path / "z").exists()  # checked before any work, nothing written


def test_audit_catches_what_a_blind_dedup_missed(tmp_path: Path) -> None:
    """With bands × rows = 1 × 120 dedup finds no near pairs; the audit (its own recall banding) must report the
    straddling copies, and --strict must refuse to write."""
    from logminer.split.dedup import DedupOptions

    corpus = planted_corpus(docs=80, near=30, exact=0, seed=2, max_edits=2)
    sessions = [Session(session_id=f"x{i:03d}", agent="t", source_file="x.jsonl", turns=[Turn("user", text)])
                for i, text in enumerate(corpus.texts)]
    path = tmp_path / "s.parquet"
    sessions_to_frame(sessions).write_parquet(path)
    blind = DedupOptions(bands=1, rows=120)
    manifest = run_split(SplitJob(inputs=(str(path),), out_dir=str(tmp_path / "o"), progress=False, dedup=blind,
                                  split=SplitOptions(ratios=(0.5, 0.25, 0.25))))
    assert manifest["counts"]["duplicates"] == 0
    audit = manifest["audit"]
    assert audit["cross_pairs_at_threshold"] > 0 and not audit["clean"]
    assert audit["examples"][0]["first_split"] != audit["examples"][0]["second_split"]
    with pytest.raises(SplitError, match="cross-split"):
        run_split(SplitJob(inputs=(str(path),), out_dir=str(tmp_path / "strict"), progress=False, dedup=blind,
                           strict=True, split=SplitOptions(ratios=(0.5, 0.25, 0.25))))
    assert not (tmp_path / "strict" / "manifest.json").exists()


@pytest.fixture(scope="module")
def real_split(real_logs: Path, tmp_path_factory) -> tuple[Path, Path, dict]:
    outs = []
    for run in ("first", "second"):
        out = tmp_path_factory.mktemp(f"real-{run}")
        manifest = run_split(SplitJob(inputs=(str(real_logs),), out_dir=str(out), progress=False,
                                      holdout=(str(real_logs / "swebench-instances"),)))
        outs.append(out)
    return outs[0], outs[1], manifest


def test_real_logs_determinism_and_accounting(real_split) -> None:
    first, second, manifest = real_split
    for name in OUTPUTS:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    counts = manifest["counts"]
    assert counts["adds_up"]
    rows = {name: pl.read_parquet(first / f"{name}.parquet").height
            for name in ("calibration", "validation", "eval", "duplicates", "contaminated")}
    split_rejected = pl.read_parquet(first / "rejected.parquet").filter(pl.col("stage") != "ingest").height
    assert counts["input_sessions"] == sum(rows.values()) + split_rejected
    assert manifest["audit"]["clean"] and manifest["audit"]["cross_pairs_at_threshold"] == 0
    assert {Path(i["path"]).parent.name for i in manifest["inputs"]} >= {"mini-swe-agent-traj", "llm-completion-log"}


def test_real_logs_prefix_and_replays_merged_benchmarks_removed(real_split) -> None:
    first, _, _ = real_split
    duplicates = pl.read_parquet(first / "duplicates.parquet")
    by_file = {Path(f).name: (reason, Path(rep).name) for f, reason, rep in duplicates.select(
        "source_file", "reason", "representative_source_file").iter_rows()}
    assert by_file["openhands_sdk_claude-sonnet-4_1757015040.416.json"] == (
        "prefix_duplicate", "openhands_sdk_claude-sonnet-4_1757015046.707.json")
    assert by_file["demo_replay_function_calling_marshmallow-1867.traj"] == (
        "contained_duplicate", "demo_replay_default_marshmallow-1867.traj")
    contaminated = {Path(f).name for f in pl.read_parquet(first / "contaminated.parquet")["source_file"]}
    assert {"gemini3pro_v1.15_django__django-15731.traj.json", "gpt4_pydicom-1458.traj",
            "pr816_deepseek_chat_test_1-100_django__django-11039.traj.json"} <= contaminated
    kept = set()
    for name in ("calibration", "validation", "eval"):
        kept |= {Path(f).name for f in pl.read_parquet(first / f"{name}.parquet")["source_file"]}
    assert "pr816_deepseek_lite_dev_noparallel_pydicom__pydicom-901.traj.json" in kept
    assert "openhands_sdk_claude-sonnet-4_1757015046.707.json" in kept


def test_tokenizer_counts_and_bad_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "fix": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    sessions = [Session(session_id=f"t{i}", agent="t", source_file="t.jsonl",
                        turns=[Turn("user", f"fix bug number {i} in module {chr(97 + i) * 3}, then run tests {i}")])
                for i in range(6)]
    sessions_to_frame(sessions).write_parquet(tmp_path / "s.parquet")
    out = tmp_path / "out"
    run_split(SplitJob(inputs=(str(tmp_path / "s.parquet"),), out_dir=str(out), progress=False,
                       tokenizer=str(tmp_path / "tokenizer.json"), split=SplitOptions(ratios=(1, 0, 0))))
    frame = read_split(out, "calibration")
    assert frame.height == 6  # digits normalise to 0, but the module names differ: no duplicates
    for text, tokens in frame.select("text", "tokens").iter_rows():
        assert tokens == len(tokenizer.encode(text, add_special_tokens=False).ids)
    runner = CliRunner()
    bad = runner.invoke(main, ["split", str(tmp_path / "s.parquet"), "-o", str(tmp_path / "bad"), "--tokenizer",
                               str(tmp_path / "s.parquet")])
    assert bad.exit_code == 1 and "cannot load tokenizer" in bad.output


def test_raw_logs_and_ingested_table_split_alike(real_logs: Path, tmp_path: Path) -> None:
    from logminer.ingest import pipeline as ingest

    inputs = [str(real_logs / "llm-completion-log"), str(real_logs / "swe-agent-traj")]
    ingest.ingest(inputs, tmp_path / "sessions.parquet", ingest.IngestOptions())
    from_raw = run_split(SplitJob(inputs=tuple(inputs), out_dir=str(tmp_path / "raw"), progress=False))
    from_table = run_split(SplitJob(inputs=(str(tmp_path / "sessions.parquet"),), out_dir=str(tmp_path / "table"),
                                    progress=False))
    assert from_raw["counts"]["input_sessions"] == from_table["counts"]["input_sessions"] == 7
    for name in ("calibration.parquet", "validation.parquet", "eval.parquet", "duplicates.parquet",
                 "calibration.txt"):
        assert (tmp_path / "raw" / name).read_bytes() == (tmp_path / "table" / name).read_bytes(), name
    assert from_raw["counts"]["duplicates"] == 2  # the LiteLLM prefix and the marshmallow replay


def test_bundled_examples_with_holdout(example_logs: Path, tmp_path: Path) -> None:
    """Every bundled format (an HF chat parquet among them) splits; the sample SWE-bench runs are contaminated."""
    holdout = example_logs.parent / "holdout"
    assert holdout.is_dir(), f"{holdout}: the bundled holdout sample is part of the repository"
    runner = CliRunner()
    result = runner.invoke(main, ["split", str(example_logs), "-o", str(tmp_path / "ex"), "--holdout", str(holdout),
                                  "--strict", "--no-progress"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ex" / "manifest.json").read_text())
    assert manifest["counts"]["adds_up"] and manifest["counts"]["contaminated"] >= 3
    contaminated = pl.read_parquet(tmp_path / "ex" / "contaminated.parquet")
    assert all(reason.startswith("instance_id ") for reason in contaminated["reason"].to_list())
    sources = set()
    for name in ("calibration", "validation", "eval"):
        sources |= set(read_split(tmp_path / "ex", name)["source_file"].to_list())
    assert any(s.endswith(".parquet") for s in sources)


def test_group_by_repo_falls_back_to_instance_ids(tmp_path: Path) -> None:
    from dataclasses import replace

    from logminer.split.decontaminate import DocumentFacts
    from logminer.split.pipeline import group_key
    from logminer.split.records import Document

    doc = Document(0, "a", "f", "mini-swe-agent", None, 1, 2, "{}", 1, "text", DocumentFacts(), "", cluster="c1")
    assert group_key(replace(doc, facts=DocumentFacts(instance_id="django__django-11039")), "repo") == \
        'repo:"django/django"'
    assert group_key(doc, "repo") == "cluster:c1"
    assert group_key(doc, "agent") == 'agent:"mini-swe-agent"'
    assert group_key(replace(doc, metadata='{"team": "x"}'), "team") == 'team:"x"'
    assert group_key(doc, None) == "cluster:c1"

"""Corpus recipes: parsing, budgets and ratios per slice, disjoint slices, the shipped recipes, CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from logminer.cli import main
from logminer.corpus import CorpusError, build_corpus, check_disjoint, load_recipe
from logminer.rendering.chat import count_tokens
from logminer.schema import Session, Turn, sessions_to_frame
from logminer.split.dedup import DedupOptions, deduplicate
from logminer.split.pipeline import SplitJob, run_split

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from dedup_throughput import planted_corpus  # noqa: E402

CORPORA = Path(__file__).resolve().parents[2] / "corpora"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A `logminer split` output of planted logs, a paragraph text file (with copies of some logs) and a code folder."""
    root = tmp_path_factory.mktemp("sources")
    corpus = planted_corpus(docs=400, near=40, exact=10, seed=21, words_per_doc=120)
    sessions = [Session(session_id=f"s{i:04d}", agent="t", source_file="logs.jsonl", turns=[Turn("user", text)])
                for i, text in enumerate(corpus.texts[:300])]
    sessions_to_frame(sessions).write_parquet(root / "sessions.parquet")
    run_split(SplitJob(inputs=(str(root / "sessions.parquet"),), out_dir=str(root / "split"), progress=False))
    # the text source repeats 20 log documents verbatim: dedup must keep them out of a second slice
    paragraphs = corpus.texts[300:] + corpus.texts[:20]
    (root / "wiki.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    (root / "code").mkdir()
    names = ["parse", "render", "split", "score", "merge"]
    for i, name in enumerate(names):  # digits normalise to 0, so the files differ by words
        body = "".join(f"def {name}_{other}(value):\n    return {other}_{name}(value)\n" for other in names)
        (root / "code" / f"{name}.py").write_text(body, encoding="utf-8")
    return root


def write_recipe(folder: Path, text: str) -> Path:
    path = folder / "recipe.toml"
    path.write_text(text, encoding="utf-8")
    return path


HYBRID = """
[corpus]
seed = 3
[sources.logs]
kind = "split"
path = "split"
[sources.wiki]
kind = "text"
path = "wiki.txt"
[sources.code]
kind = "text"
path = "code"
document = "file"
[slices.calibration]
tokens = "20k"
parts = [{ source = "logs", ratio = 0.5 }, { source = "wiki", ratio = 0.5 }]
[slices.validation]
parts = [{ source = "code" }]
[slices.eval]
tokens = "3k"
parts = [{ source = "logs" }]
"""


def test_hybrid_recipe_budgets_and_disjointness(sources: Path, tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(sources, HYBRID))
    manifest = build_corpus(recipe, tmp_path / "out", progress=False)
    calibration = manifest["slices"]["calibration"]
    budgets = [part["budget"] for part in calibration["parts"]]
    assert budgets == [10_000, 10_000]
    for part in calibration["parts"]:
        assert 9_000 < part["tokens"] <= part["budget"]
    assert manifest["slices"]["validation"]["documents"] == 5  # every code file, no budget
    assert manifest["disjoint"] == {"exact_pairs": 0, "near_pairs": 0}
    slices = {}
    for name in ("calibration", "validation", "eval"):
        text = (tmp_path / "out" / f"{name}.txt").read_text(encoding="utf-8")
        slices[name] = [doc for doc in text.rstrip("\n").split("\n\n") if doc]
        assert sum(count_tokens(slices[name])) == manifest["slices"][name]["tokens"]
    # independent check: no document (or near copy) is in two slices
    documents = [d for name in slices for d in slices[name]]
    owner = [name for name in slices for _ in slices[name]]
    result = deduplicate(documents, DedupOptions(threshold=0.7))
    for index, rep in enumerate(result.representative.tolist()):
        assert owner[index] == owner[rep]


def test_eval_slice_draws_from_split_files(sources: Path, tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(sources, HYBRID))
    build_corpus(recipe, tmp_path / "out", progress=False)
    eval_text = (tmp_path / "out" / "eval.txt").read_text(encoding="utf-8")
    eval_split = pl.read_parquet(sources / "split" / "eval.parquet")["text"].to_list()
    assert eval_text and all(doc in eval_split for doc in eval_text.rstrip("\n").split("\n\n"))


def test_overlapping_slices_are_an_error() -> None:
    recipe = load_recipe(CORPORA / "logs-only.toml", {"logs": "/nonexistent"})
    texts = ["alpha beta gamma delta epsilon zeta eta theta " * 8, "unrelated words entirely " * 10]
    result = deduplicate(texts)
    plan = {"calibration": [{"documents": [0]}], "validation": [{"documents": [0]}], "eval": [{"documents": [1]}]}
    with pytest.raises(CorpusError, match="not disjoint: 1 exact and 1 near"):
        check_disjoint(recipe, plan, result)


def test_shipped_recipes_parse(sources: Path) -> None:
    for name in ("seed-hybrid.toml", "logs-only.toml"):
        recipe = load_recipe(CORPORA / name)
        assert set(recipe.slices) == {"calibration", "validation", "eval"}
        assert all(str(source.path).startswith(str(CORPORA)) for source in recipe.sources.values())  # relative
    hybrid = load_recipe(CORPORA / "seed-hybrid.toml")
    assert {p.source for p in hybrid.slices["calibration"]} == {"logs", "wiki"}
    assert hybrid.slice_tokens["calibration"] == 400_000


def test_recipe_errors(sources: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="kind must be one of"):
        load_recipe(write_recipe(tmp_path, '[sources.a]\nkind = "video"\npath = "x"\n'))
    with pytest.raises(CorpusError, match="unknown source 'b'"):
        load_recipe(write_recipe(tmp_path, '[sources.a]\nkind = "text"\npath = "x"\n'
                                           '[slices.calibration]\nparts = [{ source = "b" }]\n'))
    with pytest.raises(CorpusError, match="needs the slice's `tokens`"):
        load_recipe(write_recipe(tmp_path, '[sources.a]\nkind = "text"\npath = "x"\n'
                                           '[slices.eval]\nparts = [{ source = "a", ratio = 0.5 }]\n'))
    with pytest.raises(CorpusError, match="cannot read recipe"):
        load_recipe(write_recipe(tmp_path, "[corpus\n"))
    with pytest.raises(CorpusError, match="unknown sources: nope"):
        load_recipe(CORPORA / "logs-only.toml", {"nope": "x"})


def test_cli_corpus(sources: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    recipe = CORPORA / "logs-only.toml"
    args = ["corpus", str(recipe), "-o", str(tmp_path / "a"), "--source", f"logs={sources / 'split'}",
            "--no-progress"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "disjoint: 0 exact, 0 near pairs" in result.output
    again = runner.invoke(main, args[:3] + [str(tmp_path / "b")] + args[4:])
    assert again.exit_code == 0
    for name in ("calibration.txt", "validation.txt", "eval.txt", "corpus_manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    manifest = json.loads((tmp_path / "a" / "corpus_manifest.json").read_text())
    assert manifest["slices"]["calibration"]["tokens"] <= 500_000
    missing = runner.invoke(main, ["corpus", str(recipe), "-o", str(tmp_path / "c"), "--source", "logs=/nope"])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    bad = runner.invoke(main, ["corpus", str(recipe), "-o", str(tmp_path / "c"), "--source", "logs"])
    assert bad.exit_code == 2 and "NAME=PATH" in bad.output


def test_text_sources_are_redacted(tmp_path: Path) -> None:
    key = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8I9j0" * 4
    (tmp_path / "notes.txt").write_text(
        "Deploy notes for the staging cluster and the nightly jobs.\n\n"
        f"export ANTHROPIC_API_KEY={key} then mail ops-team@example.com about the rollout\n", encoding="utf-8")
    recipe = load_recipe(write_recipe(tmp_path, '[sources.notes]\nkind = "text"\npath = "notes.txt"\n'
                                                '[slices.calibration]\nparts = [{ source = "notes" }]\n'))
    manifest = build_corpus(recipe, tmp_path / "out", progress=False)
    text = (tmp_path / "out" / "calibration.txt").read_text(encoding="utf-8")
    assert key not in text and "ops-team@example.com" not in text
    assert "Deploy notes" in text and manifest["pool"]["redactions"]

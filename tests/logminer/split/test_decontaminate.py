"""Decontamination: instance ids, repositories, 13-gram overlap and MinHash similarity against holdout items."""

from __future__ import annotations

from pathlib import Path

import pytest

from logminer.split.decontaminate import DecontaminationOptions, DocumentFacts, HoldoutIndex
from logminer.split.dedup import DedupOptions
from logminer.split.holdout import HoldoutItem

PROBLEM = (
    "The TimeDelta field loses precision when it serializes milliseconds: a value of 345 milliseconds is rounded "
    "down to 344 because the division uses integer arithmetic instead of rounding to the nearest integer value."
)
PATCH_ADDED = "return int(round(value.total_seconds() / base_unit.total_seconds()))"
ITEMS = [
    HoldoutItem("bench.json", "swe-bench", "marshmallow-code__marshmallow-1867", "marshmallow-code/marshmallow",
                [PROBLEM, PATCH_ADDED]),
    HoldoutItem("ids.txt", "swe-bench", "django__django-11039", "django/django", []),
]
CLEAN = "We refactored the logging module and added type hints to every public function in the package."


def index(**options) -> HoldoutIndex:
    return HoldoutIndex(ITEMS, DecontaminationOptions(**options), DedupOptions().hasher())


def words(text: str, count: int, start: int = 0) -> str:
    return " ".join(text.split()[start : start + count])


def test_instance_id_from_metadata_and_text() -> None:
    reasons = index().check(
        [CLEAN, CLEAN + " see django__django-11039 for details", CLEAN],
        [DocumentFacts(instance_id="django__django-11039"), DocumentFacts(), DocumentFacts("django__django-99999")],
    )
    assert reasons[0].startswith("instance_id django__django-11039")
    assert reasons[1].startswith("text names instance django__django-11039")
    assert reasons[2] == ""


def test_repository_match_only_when_asked() -> None:
    facts = [DocumentFacts(repo="Django/Django")]
    assert index().check([CLEAN], facts) == [""]
    assert index(match_repo=True).check([CLEAN], facts)[0].startswith("repository Django/Django")


def test_thirteen_gram_boundary() -> None:
    # case and punctuation do not matter (normalised); 13 consecutive words hit, 12 do not
    quoted_13 = f"Earlier we saw: {words(PROBLEM, 13, 5).upper()}!! and then nothing else."
    quoted_12 = f"Earlier we saw: {words(PROBLEM, 12, 5)} and then nothing else."
    reasons = index(minhash_threshold=1.0).check([quoted_13, quoted_12], [DocumentFacts()] * 2)
    assert reasons[0] == "1 shared 13-grams with swe-bench:marshmallow-code__marshmallow-1867"
    assert reasons[1] == ""
    assert index(min_ngram_hits=2).check([quoted_13], [DocumentFacts()]) == [""]


def test_gold_patch_lines_and_minhash() -> None:
    patch_doc = "diff: " + PATCH_ADDED + " # done, tests pass now"
    near_copy = PROBLEM.replace("345", "346")
    reasons = index(ngram=13).check([patch_doc], [DocumentFacts()])
    # normalised, the added line is 10 words ("return int round value total seconds base unit total seconds"):
    # no 13-gram to match, and 10 - 5 + 1 = 6 shared 5-grams
    assert reasons == [""]
    assert index(ngram=5).check([patch_doc], [DocumentFacts()])[0].startswith("6 shared 5-grams")
    only_minhash = index(min_ngram_hits=10**9)
    found = only_minhash.check([near_copy, CLEAN], [DocumentFacts()] * 2)
    assert found[0].startswith("MinHash similarity") and found[1] == ""


def test_real_swebench_runs_caught_and_others_kept(real_logs: Path) -> None:
    from logminer.rendering.chat import render_session
    from logminer.split.holdout import instance_id_of, load_holdout
    from logminer.split.inputs import ingest_raw

    sessions, _ = ingest_raw([str(real_logs / "mini-swe-agent-traj"), str(real_logs / "swe-agent-traj")])
    holdout = HoldoutIndex(load_holdout([str(real_logs / "swebench-instances")]), DecontaminationOptions(),
                           DedupOptions().hasher())
    texts = [render_session(s) for s in sessions]
    reasons = holdout.check(texts, [DocumentFacts(instance_id_of(s)) for s in sessions])
    verdict = {Path(s.source_file).name: bool(r) for s, r in zip(sessions, reasons)}
    assert verdict == {
        "gemini3pro_v1.15_astropy__astropy-12907.traj.json": True,  # SWE-bench Lite/Verified
        "gemini3pro_v1.15_django__django-15731.traj.json": True,  # Verified
        "gemini3pro_v1.15_sympy__sympy-19954.traj.json": True,  # Verified
        "pr816_deepseek_chat_test_1-100_django__django-11039.traj.json": True,  # Lite
        "gpt4_pydicom-1458.traj": True,  # dev-easy instance file (its problem statement)
        "pr816_deepseek_lite_dev_noparallel_pydicom__pydicom-901.traj.json": False,  # in no list
        "test_github_issue.traj.json": False,
        "gpt4_sweagenttestrepo-1c2844.traj": False,
        "demo_function_calling_simple.traj": False,
        "demo_replay_default_marshmallow-1867.traj": False,
        "demo_replay_function_calling_marshmallow-1867.traj": False,
    }


def test_id_scan_handles_huge_tokens() -> None:
    """A megabyte-long token (a base64 blob) next to '__' must not make the id scan quadratic."""
    blob = "A" * 1_000_000 + "__" + "B" * 1_000_000 + " then django__django-11039 ran"
    reasons = index().check([blob], [DocumentFacts()])
    assert reasons[0].startswith("text names instance django__django-11039")

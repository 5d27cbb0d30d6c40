"""`logminer split` end to end: sessions → rendered documents → dedup → decontamination → splits → audit → files.

OUT_DIR is published whole (written into a temporary sibling that replaces it in one rename, under a lock), and the
same inputs and options give byte-identical files:
  calibration.parquet / validation.parquet / eval.parquet   rendered text, tokens, source file, session id, cluster id,
                                                            role spans (logminer.rendering.spans; null if unplaceable)
  calibration.txt / validation.txt / eval.txt               documents joined by calibkit's DOCUMENT_SEPARATOR
  duplicates.parquet / contaminated.parquet / rejected.parquet   with reasons
  manifest.json       written last: input sha256s, options, versions, counts that add up, sha256 of every file

DOCUMENT_SEPARATOR and the text column are the calibration-text contract in calibkit.calibration_text. Token
counts and budgets are per document; the separators add about one token per document on top.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from calibkit.atomic import manifest_files, publish_folder, sha256_file, write_atomic, write_with
from calibkit.calibration_text import DOCUMENT_SEPARATOR
from logminer.ingest.redact import redact_json, redact_text
from logminer.reading.sources import safe_name
from logminer.split.assign import OVER_BUDGET, SPLITS, SplitOptions, assign_splits, group_order
from logminer.split.audit import AuditReport, audit_cross_split
from logminer.split.decontaminate import DecontaminationOptions, DocumentFacts, HoldoutIndex
from logminer.split.dedup import DedupOptions, deduplicate, task_text, turn_keys_batch
from logminer.split.inputs import LoadedInputs, load_inputs
from logminer.split.records import (
    BUCKET_SCHEMA,
    CONTAMINATED,
    DUPLICATE,
    KEPT,
    REJECTED_SCHEMA,
    SPLIT_SCHEMA,
    Document,
    Rejection,
)

MANIFEST = "manifest.json"


class SplitError(Exception):
    """The split cannot be trusted or made (strict audit failure, unusable tokenizer or holdout); says why."""


@dataclass(frozen=True)
class SplitJob:
    inputs: tuple[str, ...]
    out_dir: str
    tokenizer: str | None = None
    chat_template: str | None = None  # bundled name or Jinja file for a tokenizer without a template
    holdout: tuple[str, ...] = ()
    group_by: str | None = None
    include_reasoning: bool = False
    strict: bool = False
    progress: bool = True
    jobs: int = 1  # worker processes reading raw inputs (the outputs do not depend on it)
    dedup: DedupOptions = field(default_factory=DedupOptions)
    decontamination: DecontaminationOptions = field(default_factory=DecontaminationOptions)
    split: SplitOptions = field(default_factory=SplitOptions)


def _bar(job: SplitJob, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not job.progress, file=sys.stderr, dynamic_ncols=True)


def render_documents(loaded: LoadedInputs, job: SplitJob, tokenizer: Any) -> tuple[list[Document], list[Rejection]]:
    """Render and count every session; sessions that cannot be rendered are rejected with the reason."""
    from logminer.rendering.chat import RenderError, count_tokens
    from logminer.rendering.spans import render_document
    from logminer.split.holdout import instance_id_of

    sessions = sorted(loaded.sessions, key=lambda s: (s.source_file, s.session_id, s.line_start, s.byte_start))
    docs: list[Document] = []
    rejected, kept_sessions = [], []
    with _bar(job, len(sessions), "render") as bar:
        for session in sessions:
            bar.update(1)
            try:
                text, spans = render_document(session, tokenizer, include_reasoning=job.include_reasoning)
            except RenderError as error:
                rejected.append(Rejection.of_session(session, "render", str(error)))
                continue
            if not session.turns or not text.strip():
                rejected.append(Rejection.of_session(session, "render", "no text to render (no turns)"))
                continue
            repo = session.metadata.get("repo") if isinstance(session.metadata.get("repo"), str) else None
            facts = DocumentFacts(instance_id_of(session), repo)
            docs.append(Document.rendered(len(docs), session, text, task_text(session), facts, spans))
            kept_sessions.append(session)
    for doc, keys in zip(docs, turn_keys_batch(kept_sessions, job.include_reasoning)):
        doc.turn_keys = keys
    with _bar(job, len(docs), "tokens") as bar:
        for first in range(0, len(docs), 256):
            block = docs[first : first + 256]
            for doc, count in zip(block, count_tokens([d.text for d in block], tokenizer)):
                doc.tokens = count
            bar.update(len(block))
    return docs, rejected


def group_key(doc: Document, group_by: str | None) -> str:
    """The --group-by value (a session column or a metadata field; "repo" falls back to the repository a SWE-bench
    instance id names), else the document's own cluster."""
    if not group_by:
        return f"cluster:{doc.cluster}"
    columns = doc.columns()
    if group_by in columns and group_by != "metadata":
        value = columns[group_by]
    else:
        value = json.loads(doc.metadata).get(group_by)
    if group_by == "repo" and not value:
        from logminer.reading.formats.jsondoc import repo_from_instance_id

        value = doc.facts.repo or repo_from_instance_id(doc.facts.instance_id)
    if value is None or value == "":
        return f"cluster:{doc.cluster}"
    return f"{group_by}:{json.dumps(value, sort_keys=True, ensure_ascii=False)}"


def run_split(job: SplitJob) -> dict[str, Any]:
    """Run every stage and publish every output as one folder; returns the manifest (also manifest.json, written
    last, with the sha256 of every other file). The output is locked for the whole run: a second run on it fails
    at once."""
    with publish_folder(job.out_dir, MANIFEST) as staging:
        tokenizer, holdout_items = _prepare(job)  # fail on a bad tokenizer or holdout before the long stages
        loaded = load_inputs(list(job.inputs), include_reasoning=job.include_reasoning, progress=job.progress,
                             jobs=job.jobs)
        docs, rejected = render_documents(loaded, job, tokenizer)
        rejected = loaded.rejected + rejected
        texts = [doc.text for doc in docs]
        with _bar(job, len(docs), "minhash") as bar:
            dedup = deduplicate(texts, job.dedup, turns=[d.turn_keys for d in docs], tasks=[d.task for d in docs],
                                progress=bar)
        index = HoldoutIndex(holdout_items, job.decontamination, job.dedup.hasher()) if holdout_items else None
        contamination = index.check(texts, [d.facts for d in docs], dedup.signatures) if index else [""] * len(docs)
        _mark_buckets(docs, dedup, contamination)
        kept = [doc for doc in docs if doc.status == KEPT]
        for doc in kept:
            doc.group = group_key(doc, job.group_by)
        for doc, split in zip(kept, assign_splits([d.group for d in kept], [d.tokens for d in kept], job.split)):
            doc.split = split
        rejected += [Rejection.of_document(doc, "split", "over the token budget of every split")
                     for doc in kept if doc.split == OVER_BUDGET]
        in_split = [doc for doc in kept if doc.split != OVER_BUDGET]
        audit = audit_cross_split([d.split for d in in_split], [d.index for d in in_split], dedup.signatures,
                                  dedup.shingles, [d.session_id for d in in_split], job.dedup.threshold,
                                  job.dedup.candidate_slack)
        _audit_holdout(audit, index, [d for d in in_split if d.split == "calibration"], dedup.signatures)
        if job.strict and not audit.clean:
            raise SplitError(f"audit failed: {audit.cross_pairs_at_threshold} cross-split near-duplicate pairs at "
                             f"J >= {audit.threshold}, {audit.holdout_hits_calibration} holdout hits in calibration")
        split_counts = _write_splits(staging, docs, in_split, job.split.seed)
        _write_buckets(staging, docs, rejected)
        manifest = _manifest(job, loaded, docs, split_counts, rejected, audit, holdout_items, dedup)
        manifest["files"] = manifest_files(staging)
        write_atomic(staging / MANIFEST, json.dumps(redact_json(manifest), indent=2, sort_keys=True,
                                                      ensure_ascii=False) + "\n")
    return manifest


def _prepare(job: SplitJob) -> tuple[Any, list]:
    from logminer.rendering.chat import RenderError, load_tokenizer
    from logminer.split.holdout import HoldoutError, load_holdout

    try:
        tokenizer = load_tokenizer(job.tokenizer, job.chat_template) if job.tokenizer else None
    except RenderError as error:
        raise SplitError(str(error)) from error
    try:
        return tokenizer, load_holdout(list(job.holdout)) if job.holdout else []
    except HoldoutError as error:
        raise SplitError(f"holdout: {error}") from error


def _mark_buckets(docs: list[Document], dedup, contamination: list[str]) -> None:
    """Per document: dedup's verdict, then KEPT / DUPLICATE / CONTAMINATED and the reason. A cluster with a
    contaminated member loses its representative too (it is a near copy of benchmark material); clean
    non-representatives are duplicates."""
    for doc, rep, similarity, reason in zip(docs, dedup.representative.tolist(), dedup.similarity.tolist(),
                                            dedup.reason):
        doc.representative, doc.similarity, doc.reason = rep, similarity, reason
    for doc in docs:
        doc.cluster = docs[doc.representative].identity()
    tainted: dict[int, str] = {}
    for doc, reason in zip(docs, contamination):
        rep = doc.representative
        if reason and rep != doc.index and rep not in tainted:
            tainted[rep] = f"cluster member {doc.session_id}: {reason}"
    for doc, reason in zip(docs, contamination):
        rep = doc.representative
        if reason or (rep == doc.index and rep in tainted):
            doc.status, doc.reason = CONTAMINATED, reason or tainted[rep]
        elif rep != doc.index:
            doc.status = DUPLICATE
        else:
            doc.status, doc.reason = KEPT, ""


def _audit_holdout(audit: AuditReport, index, members: list[Document], signatures: np.ndarray) -> None:
    if index is None or not members:
        return
    found = index.check([d.text for d in members], [d.facts for d in members], signatures[[d.index for d in members]])
    for doc, reason in zip(members, found):
        if reason:
            audit.holdout_hits_calibration += 1
            if len(audit.holdout_examples) < 20:
                audit.holdout_examples.append({"session_id": doc.session_id, "reason": reason})


def _write_splits(out: Path, docs: list[Document], in_split: list[Document], seed: int) -> dict[str, dict[str, int]]:
    """<split>.parquet and <split>.txt; documents ordered by their group's seeded position, then canonically."""
    order = {key: n for n, key in enumerate(group_order([d.group for d in in_split], seed))}
    sizes = Counter(doc.representative for doc in docs)
    counts = {}
    for name in SPLITS:
        members = sorted((d for d in in_split if d.split == name), key=lambda d: (order[d.group], d.index))
        frame = pl.DataFrame([d.split_row(sizes[d.index]) for d in members], schema=SPLIT_SCHEMA)
        write_with(out / f"{name}.parquet", lambda p, f=frame: f.write_parquet(p))
        text = DOCUMENT_SEPARATOR.join(d.text for d in members)
        write_atomic(out / f"{name}.txt", text + "\n" if text else "")
        counts[name] = {"sessions": len(members), "tokens": int(sum(d.tokens for d in members))}
    return counts


def _write_buckets(out: Path, docs: list[Document], rejected: list[Rejection]) -> None:
    for bucket, name in ((DUPLICATE, "duplicates.parquet"), (CONTAMINATED, "contaminated.parquet")):
        rows = [d.bucket_row(docs[d.representative]) for d in docs if d.status == bucket]
        frame = pl.DataFrame(rows, schema=BUCKET_SCHEMA)
        write_with(out / name, lambda p, f=frame: f.write_parquet(p))
    frame = pl.DataFrame([r.row() for r in rejected], schema=REJECTED_SCHEMA)
    write_with(out / "rejected.parquet", lambda p: frame.write_parquet(p))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("calibkit", "numpy", "polars", "datasketch", "xxhash", "tokenizers", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _manifest(job: SplitJob, loaded: LoadedInputs, docs: list[Document], split_counts: dict,
              rejected: list[Rejection], audit: AuditReport, holdout_items: list, dedup) -> dict[str, Any]:
    buckets = Counter(doc.status for doc in docs)
    split_rejected = sum(1 for r in rejected if r.stage != "ingest")
    counts = {
        "input_sessions": len(loaded.sessions),
        **{name: split_counts[name]["sessions"] for name in SPLITS},
        "duplicates": buckets[DUPLICATE],
        "contaminated": buckets[CONTAMINATED],
        "rejected": split_rejected,
        "ingest_rejected_records": sum(r.records for r in rejected if r.stage == "ingest"),
    }
    counts["adds_up"] = counts["input_sessions"] == sum(counts[k] for k in (*SPLITS, "duplicates", "contaminated",
                                                                            "rejected"))
    return {
        # paths redacted like every other output (a home folder names its user)
        "inputs": [_input_entry(path) for path in loaded.files],
        "holdout": [{"path": redact_text(path), "sha256": sha256_file(path)}
                    for path in sorted({i.source_file for i in holdout_items})],
        "options": _options(job),
        "versions": _versions(),
        "counts": counts,
        "tokens": {name: split_counts[name]["tokens"] for name in SPLITS},
        "dedup": {"bands_rows": list(job.dedup.banding()), "candidate_pairs": dedup.candidates,
                  "verified_near_pairs": dedup.near_pairs,
                  "reasons": dict(sorted(Counter(r for r in dedup.reason if r).items()))},
        "audit": asdict(audit) | {"clean": audit.clean},
        "document_separator": DOCUMENT_SEPARATOR,
    }


def _input_entry(path: str) -> dict[str, Any]:
    """Path (redacted, printable), sha256 and size of an input; an input that cannot be read (rejected, with its
    reason, in rejected.parquet) is listed without them, never opened here (a FIFO would block)."""
    entry: dict[str, Any] = {"path": redact_text(safe_name(path))}
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            return entry | {"sha256": sha256_file(path), "bytes": os.stat(path).st_size}
    except OSError:
        pass
    return entry | {"sha256": None, "bytes": None}


def _options(job: SplitJob) -> dict[str, Any]:
    options = asdict(job)
    options.pop("progress")
    options.pop("jobs")
    options.pop("out_dir")
    options["inputs"] = [redact_text(safe_name(path)) for path in job.inputs]
    options["holdout"] = [redact_text(path) for path in job.holdout]
    options["tokenizer"] = redact_text(job.tokenizer) if job.tokenizer else None
    options["chat_template"] = redact_text(job.chat_template) if job.chat_template else None
    return options


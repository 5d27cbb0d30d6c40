"""`logminer split` end to end: sessions → rendered documents → dedup → decontamination → splits → audit → files.

Every output is written atomically into OUT_DIR, and the same inputs and options give byte-identical files:
  calibration.parquet / validation.parquet / eval.parquet   rendered text, tokens, source file, session id, cluster id,
                                                            role spans (logminer.rendering.spans; null if unplaceable)
  calibration.txt / validation.txt / eval.txt               documents joined by DOCUMENT_SEPARATOR (calibkit.calibration_text)
  duplicates.parquet / contaminated.parquet / rejected.parquet   with reasons
  manifest.json                                             input sha256s, options, versions, counts that add up

DOCUMENT_SEPARATOR and the text column are the calibration-text contract in calibkit.calibration_text. Token
counts and budgets are per document; the separators add about one token per document on top.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from calibkit.atomic import sha256_file, write_atomic, write_with
from calibkit.calibration_text import DOCUMENT_SEPARATOR
from logminer.ingest.redact import redact_text
from logminer.split.assign import OVER_BUDGET, SPLITS, SplitOptions, assign_splits, group_order
from logminer.split.audit import AuditReport, audit_cross_split
from logminer.split.decontaminate import DecontaminationOptions, DocumentFacts, HoldoutIndex
from logminer.split.dedup import KEPT, DedupOptions, deduplicate, task_text, turn_keys_batch
from logminer.split.inputs import LoadedInputs, load_inputs

CONTAMINATED = "contaminated"
DUPLICATE = "duplicate"


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
    dedup: DedupOptions = field(default_factory=DedupOptions)
    decontamination: DecontaminationOptions = field(default_factory=DecontaminationOptions)
    split: SplitOptions = field(default_factory=SplitOptions)


@dataclass
class Documents:
    """The sessions that rendered, in canonical order, with everything later stages need (one row each)."""

    rows: list[dict[str, Any]]
    texts: list[str]
    tokens: list[int]
    keys: list[tuple[tuple[int, int], ...]]
    tasks: list[str]
    facts: list[DocumentFacts]


def _bar(job: SplitJob, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not job.progress, file=sys.stderr, dynamic_ncols=True)


def render_documents(loaded: LoadedInputs, job: SplitJob, tokenizer: Any) -> tuple[Documents, list[dict]]:
    """Render and count every session; sessions that cannot be rendered are rejected with the reason."""
    from logminer.rendering.chat import RenderError, count_tokens
    from logminer.rendering.spans import render_document
    from logminer.split.holdout import instance_id_of

    sessions = sorted(loaded.sessions, key=lambda s: (s.source_file, s.session_id, s.line_start, s.byte_start))
    docs = Documents([], [], [], [], [], [])
    rejected, kept_sessions = [], []
    with _bar(job, len(sessions), "render") as bar:
        for session in sessions:
            bar.update(1)
            try:
                text, spans = render_document(session, tokenizer, include_reasoning=job.include_reasoning)
            except RenderError as error:
                rejected.append(_rejected_row(session, "render", str(error)))
                continue
            if not session.turns or not text.strip():
                rejected.append(_rejected_row(session, "render", "no text to render (no turns)"))
                continue
            docs.rows.append(_base_row(session) | {"spans": spans})
            docs.texts.append(text)
            kept_sessions.append(session)
            docs.tasks.append(task_text(session))
            repo = session.metadata.get("repo") if isinstance(session.metadata.get("repo"), str) else None
            docs.facts.append(DocumentFacts(instance_id_of(session), repo))
    docs.keys = turn_keys_batch(kept_sessions, job.include_reasoning)
    with _bar(job, len(docs.texts), "tokens") as bar:
        for first in range(0, len(docs.texts), 256):
            docs.tokens.extend(count_tokens(docs.texts[first : first + 256], tokenizer))
            bar.update(min(256, len(docs.texts) - first))
    return docs, rejected


def _base_row(session) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "source_file": session.source_file,
        "agent": session.agent,
        "model": session.model,
        "line_start": session.line_start,
        "turns": len(session.turns),
        "metadata": json.dumps(session.metadata, sort_keys=True, ensure_ascii=False),
    }


def _rejected_row(session, stage: str, reason: str) -> dict[str, Any]:
    return {"source_file": session.source_file, "session_id": session.session_id, "line": session.line_start,
            "stage": stage, "reason": reason, "records": session.records}


def cluster_id(row: dict[str, Any]) -> str:
    return xxhash.xxh64_hexdigest(f"{row['source_file']}\0{row['session_id']}\0{row['line_start']}".encode("utf-8"))


def group_key(row: dict[str, Any], group_by: str | None, cluster: str, facts: DocumentFacts | None = None) -> str:
    """The --group-by value (a session column or a metadata field; "repo" falls back to the repository a SWE-bench
    instance id names), else the document's own cluster."""
    if not group_by:
        return f"cluster:{cluster}"
    if group_by in row and group_by != "metadata":
        value = row[group_by]
    else:
        value = json.loads(row["metadata"]).get(group_by)
    if group_by == "repo" and not value and facts is not None:
        from logminer.reading.formats.jsondoc import repo_from_instance_id

        value = facts.repo or repo_from_instance_id(facts.instance_id)
    if value is None or value == "":
        return f"cluster:{cluster}"
    return f"{group_by}:{json.dumps(value, sort_keys=True, ensure_ascii=False)}"


def run_split(job: SplitJob) -> dict[str, Any]:
    """Run every stage and write every output; returns the manifest (also written as manifest.json)."""
    tokenizer, holdout_items = _prepare(job)  # fail on a bad tokenizer or holdout before the long stages
    loaded = load_inputs(list(job.inputs), include_reasoning=job.include_reasoning, progress=job.progress)
    docs, rejected = render_documents(loaded, job, tokenizer)
    rejected = loaded.rejected + rejected
    with _bar(job, len(docs.texts), "minhash") as bar:
        dedup = deduplicate(docs.texts, job.dedup, turns=docs.keys, tasks=docs.tasks, progress=bar)
    index = HoldoutIndex(holdout_items, job.decontamination, job.dedup.hasher()) if holdout_items else None
    contamination = index.check(docs.texts, docs.facts, dedup.signatures) if index else [""] * len(docs.texts)
    status, reasons = _buckets(dedup, contamination, docs)
    clusters = [cluster_id(docs.rows[r]) for r in dedup.representative.tolist()]
    kept = [i for i, s in enumerate(status) if s == KEPT]
    group_of = {i: group_key(docs.rows[i], job.group_by, clusters[i], docs.facts[i]) for i in kept}
    split_of = dict(zip(kept, assign_splits(list(group_of.values()), [docs.tokens[i] for i in kept], job.split)))
    for i in (i for i in kept if split_of[i] == OVER_BUDGET):
        rejected.append({**_rejected_from_row(docs.rows[i]), "reason": "over the token budget of every split"})
    in_split = [i for i in kept if split_of[i] != OVER_BUDGET]
    audit = audit_cross_split([split_of[i] for i in in_split], dedup.signatures[in_split],
                              [docs.rows[i]["session_id"] for i in in_split], job.dedup.threshold,
                              job.dedup.verify_slack)
    _audit_holdout(audit, index, docs, dedup.signatures, [i for i in in_split if split_of[i] == "calibration"])
    if job.strict and not audit.clean:
        raise SplitError(f"audit failed: {audit.cross_pairs_at_threshold} cross-split near-duplicate pairs at "
                         f"J >= {audit.threshold}, {audit.holdout_hits_calibration} holdout hits in calibration")
    out = Path(job.out_dir)
    split_counts = _write_splits(out, docs, in_split, split_of, group_of, clusters, dedup, job.split.seed)
    _write_buckets(out, docs, status, reasons, dedup, clusters, rejected)
    manifest = _manifest(job, loaded, docs, status, split_counts, rejected, audit, holdout_items, dedup)
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
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


def _write_splits(out: Path, docs: Documents, in_split: list[int], split_of: dict[int, str],
                  group_of: dict[int, str], clusters: list[str], dedup, seed: int) -> dict[str, dict[str, int]]:
    """<split>.parquet and <split>.txt; documents ordered by their group's seeded position, then canonically."""
    order = {key: n for n, key in enumerate(group_order(list(group_of.values()), seed))}
    counts = {}
    for name in SPLITS:
        members = sorted((i for i in in_split if split_of[i] == name), key=lambda i: (order[group_of[i]], i))
        frame = _split_frame(docs, members, clusters, group_of, dedup)
        write_with(out / f"{name}.parquet", lambda p, f=frame: f.write_parquet(p))
        text = DOCUMENT_SEPARATOR.join(docs.texts[i] for i in members)
        write_atomic(out / f"{name}.txt", text + "\n" if text else "")
        counts[name] = {"sessions": len(members), "tokens": int(sum(docs.tokens[i] for i in members))}
    return counts


def _buckets(dedup, contamination: list[str], docs: Documents) -> tuple[list[str], list[str]]:
    """Per document: KEPT / DUPLICATE / CONTAMINATED and the reason. A cluster with a contaminated member loses its
    representative too (it is a near copy of benchmark material); clean non-representatives are duplicates."""
    tainted: dict[int, str] = {}
    for index, reason in enumerate(contamination):
        rep = int(dedup.representative[index])
        if reason and rep != index and rep not in tainted:
            tainted[rep] = f"cluster member {docs.rows[index]['session_id']}: {reason}"
    status, reasons = [], []
    for index, reason in enumerate(contamination):
        rep = int(dedup.representative[index])
        if reason or (rep == index and rep in tainted):
            status.append(CONTAMINATED)
            reasons.append(reason or tainted[rep])
        elif rep != index:
            status.append(DUPLICATE)
            reasons.append(dedup.reason[index])
        else:
            status.append(KEPT)
            reasons.append("")
    return status, reasons


def _audit_holdout(audit: AuditReport, index, docs: Documents, signatures: np.ndarray, members: list[int]) -> None:
    if index is None or not members:
        return
    found = index.check([docs.texts[i] for i in members], [docs.facts[i] for i in members], signatures[members])
    for i, reason in zip(members, found):
        if reason:
            audit.holdout_hits_calibration += 1
            if len(audit.holdout_examples) < 20:
                audit.holdout_examples.append({"session_id": docs.rows[i]["session_id"], "reason": reason})


def _rejected_from_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"source_file": row["source_file"], "session_id": row["session_id"], "line": row["line_start"],
            "stage": "split", "reason": "", "records": 1}


SPLIT_SCHEMA = {"session_id": pl.Utf8, "source_file": pl.Utf8, "agent": pl.Utf8, "model": pl.Utf8,
                "line_start": pl.Int64, "turns": pl.Int64, "cluster_id": pl.Utf8, "cluster_size": pl.Int64,
                "group": pl.Utf8, "tokens": pl.Int64, "text": pl.Utf8, "metadata": pl.Utf8,
                "spans": pl.List(pl.Struct({"kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64}))}
BUCKET_SCHEMA = {"session_id": pl.Utf8, "source_file": pl.Utf8, "agent": pl.Utf8, "line_start": pl.Int64,
                 "reason": pl.Utf8, "cluster_id": pl.Utf8, "representative_session_id": pl.Utf8,
                 "representative_source_file": pl.Utf8, "estimated_jaccard": pl.Float64, "tokens": pl.Int64}
REJECTED_SCHEMA = {"source_file": pl.Utf8, "session_id": pl.Utf8, "line": pl.Int64, "stage": pl.Utf8,
                   "reason": pl.Utf8, "records": pl.Int64}


def _split_frame(docs: Documents, members: list[int], clusters: list[str], group_of: dict[int, str],
                 dedup) -> pl.DataFrame:
    sizes = Counter(dedup.representative.tolist())
    rows = [{**docs.rows[i], "cluster_id": clusters[i], "cluster_size": sizes[i], "group": group_of[i],
             "tokens": docs.tokens[i], "text": docs.texts[i]} for i in members]
    return pl.DataFrame(rows, schema=SPLIT_SCHEMA)


def _write_buckets(out: Path, docs: Documents, status: list[str], reasons: list[str], dedup, clusters: list[str],
                   rejected: list[dict]) -> None:
    for bucket in (DUPLICATE, CONTAMINATED):
        rows = []
        for i in (i for i, s in enumerate(status) if s == bucket):
            rep = docs.rows[int(dedup.representative[i])]
            rows.append({key: docs.rows[i][key] for key in ("session_id", "source_file", "agent", "line_start")}
                        | {"reason": reasons[i], "cluster_id": clusters[i], "representative_session_id":
                           rep["session_id"], "representative_source_file": rep["source_file"],
                           "estimated_jaccard": float(dedup.similarity[i]), "tokens": docs.tokens[i]})
        frame = pl.DataFrame(rows, schema=BUCKET_SCHEMA)
        write_with(out / f"{bucket}s.parquet" if bucket == DUPLICATE else out / f"{bucket}.parquet",
                   lambda p, f=frame: f.write_parquet(p))
    frame = pl.DataFrame(rejected, schema=REJECTED_SCHEMA)
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


def _manifest(job: SplitJob, loaded: LoadedInputs, docs: Documents, status: list[str], split_counts: dict,
              rejected: list[dict], audit: AuditReport, holdout_items: list, dedup) -> dict[str, Any]:
    buckets = Counter(status)
    split_rejected = sum(1 for r in rejected if r["stage"] != "ingest")
    counts = {
        "input_sessions": len(loaded.sessions),
        **{name: split_counts[name]["sessions"] for name in SPLITS},
        "duplicates": buckets[DUPLICATE],
        "contaminated": buckets[CONTAMINATED],
        "rejected": split_rejected,
        "ingest_rejected_records": sum(r["records"] for r in rejected if r["stage"] == "ingest"),
    }
    counts["adds_up"] = counts["input_sessions"] == sum(counts[k] for k in (*SPLITS, "duplicates", "contaminated",
                                                                            "rejected"))
    return {
        # paths redacted like every other output (a home folder names its user)
        "inputs": [{"path": redact_text(path), "sha256": sha256_file(path), "bytes": Path(path).stat().st_size}
                   for path in loaded.files],
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


def _options(job: SplitJob) -> dict[str, Any]:
    options = asdict(job)
    options.pop("progress")
    options.pop("out_dir")
    options["inputs"] = [redact_text(path) for path in job.inputs]
    options["holdout"] = [redact_text(path) for path in job.holdout]
    options["tokenizer"] = redact_text(job.tokenizer) if job.tokenizer else None
    options["chat_template"] = redact_text(job.chat_template) if job.chat_template else None
    return options


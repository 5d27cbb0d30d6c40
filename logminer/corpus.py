"""`logminer corpus RECIPE`: calibration / validation / eval text files assembled from several sources by a recipe.

The recipe format is documented in corpora/README.md. Documents of every source are deduplicated together
(exact and MinHash near-duplicates, logminer.split.dedup) before any is chosen, each slice part takes documents in a
seeded hash order while they fit its token budget, a document is used at most once, and before anything is
written the slices are checked pairwise: no two slices may share a normalised-exact or near-duplicate document.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from calibkit.atomic import manifest_files, publish_folder, sha256_file, write_atomic
from calibkit.calibration_text import DOCUMENT_SEPARATOR
from logminer.ingest.redact import redact_json, redact_text, redact_texts
from logminer.split.assign import SPLITS, fill_budget, group_order, parse_token_count
from logminer.split.audit import audit_cross_split
from logminer.split.dedup import DedupOptions, DedupResult, deduplicate

MANIFEST = "corpus_manifest.json"
SOURCE_KINDS = ("split", "text")
DOCUMENT_MODES = ("paragraph", "line", "file")
BLANK_LINES = re.compile(r"\n[ \t]*\n+")


class CorpusError(Exception):
    """A recipe or source that cannot be used, or slices that are not disjoint; names the file and reason."""


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # "split": a `logminer split` output folder; "text": a text file or a folder of text files
    path: Path
    document: str = "paragraph"  # text sources: "paragraph" (blank-line separated blocks), "line" or "file"
    min_chars: int = 1


@dataclass(frozen=True)
class Part:
    source: str
    split: str | None = None  # split sources: which split's documents (default: the slice's own name)
    tokens: int | None = None
    ratio: float | None = None


@dataclass(frozen=True)
class Recipe:
    path: Path
    sources: dict[str, Source]
    slices: dict[str, tuple[Part, ...]]
    slice_tokens: dict[str, int | None]
    threshold: float = 0.7
    seed: int = 0


def _fail(recipe: Path, message: str) -> CorpusError:
    return CorpusError(f"{recipe}: {message}")


def load_recipe(path: str | Path, overrides: dict[str, str] | None = None, seed: int | None = None) -> Recipe:
    """Parse a TOML recipe; source paths are relative to the recipe unless overridden on the command line."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise _fail(path, f"cannot read recipe: {error}") from error
    overrides = dict(overrides or {})
    sources = {}
    for name, spec in data.get("sources", {}).items():
        kind = spec.get("kind")
        if kind not in SOURCE_KINDS:
            raise _fail(path, f"source {name!r}: kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
        if name in overrides:  # a command-line path is relative to the working folder
            resolved = Path(overrides.pop(name))
        elif spec.get("path"):  # a recipe path is relative to the recipe
            resolved = path.parent / spec["path"]
        else:
            raise _fail(path, f"source {name!r} has no path (give one in the recipe or --source {name}=PATH)")
        if spec.get("document", "paragraph") not in DOCUMENT_MODES:
            raise _fail(path, f"source {name!r}: document must be one of {', '.join(DOCUMENT_MODES)}")
        sources[name] = Source(name, kind, resolved, spec.get("document", "paragraph"), int(spec.get("min_chars", 1)))
    if overrides:
        raise _fail(path, f"--source names unknown sources: {', '.join(sorted(overrides))}")
    slices, slice_tokens = {}, {}
    for name, spec in data.get("slices", {}).items():
        if name not in SPLITS:
            raise _fail(path, f"slice {name!r}: slices are {', '.join(SPLITS)}")
        try:
            slice_tokens[name] = parse_token_count(spec["tokens"]) if "tokens" in spec else None
            parts = tuple(_part(p) for p in spec.get("parts", []))
        except (ValueError, TypeError, KeyError) as error:
            raise _fail(path, f"slice {name!r}: {error}") from error
        for part in parts:
            if part.source not in sources:
                raise _fail(path, f"slice {name!r} names unknown source {part.source!r}")
            if part.ratio is not None and slice_tokens[name] is None:
                raise _fail(path, f"slice {name!r}: a part with a ratio needs the slice's `tokens`")
        slices[name] = parts
    corpus = data.get("corpus", {})
    return Recipe(path, sources, slices, slice_tokens, float(corpus.get("threshold", 0.7)),
                  int(seed if seed is not None else corpus.get("seed", 0)))


def _part(spec: dict[str, Any]) -> Part:
    tokens = parse_token_count(spec["tokens"]) if "tokens" in spec else None
    ratio = float(spec["ratio"]) if "ratio" in spec else None
    if tokens is not None and ratio is not None:
        raise ValueError(f"part {spec.get('source')!r}: give tokens or ratio, not both")
    return Part(str(spec["source"]), spec.get("split"), tokens, ratio)


@dataclass
class Pool:
    """Every candidate document: text, (source, origin) labels, and the files read."""

    texts: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    split: list[str | None] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path → sha256
    redactions: Counter[str] = field(default_factory=Counter)  # kind → replacements in text sources



def read_sources(recipe: Recipe) -> Pool:
    """Documents of every source the slices use, in a fixed order."""
    import polars as pl

    pool = Pool()
    used = sorted({part.source for parts in recipe.slices.values() for part in parts})
    for name in used:
        source = recipe.sources[name]
        if not source.path.exists():
            raise _fail(recipe.path, f"source {name!r}: {source.path} does not exist")
        if source.kind == "split":
            for split in SPLITS:
                table = source.path / f"{split}.parquet"
                if not table.exists():
                    raise _fail(recipe.path, f"source {name!r}: {table} missing (not a `logminer split` folder?)")
                frame = pl.scan_parquet(table).select("session_id", "source_file", "text").collect()
                pool.files[str(table)] = sha256_file(table)
                for row in frame.iter_rows(named=True):
                    _add(pool, name, split, f"{row['source_file']}#{row['session_id']}", row["text"])
            continue
        files = sorted(p for p in source.path.rglob("*") if p.is_file()) if source.path.is_dir() else [source.path]
        for file in files:
            try:
                text = file.read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
            except UnicodeDecodeError as error:
                raise _fail(recipe.path, f"source {name!r}: {file} is not UTF-8 text (byte {error.start})") from error
            pool.files[str(file)] = sha256_file(file)
            blocks = [block.strip() for block in _documents(text, source.document)]
            # text sources are not from `logminer ingest`: redact them here, secrets never reach an output
            for number, block in enumerate(redact_texts(blocks, pool.redactions)):
                if len(block) >= source.min_chars:
                    _add(pool, name, None, f"{file}#{number}", block)
    return pool


def _documents(text: str, mode: str) -> list[str]:
    if mode == "file":
        return [text]
    return text.split("\n") if mode == "line" else BLANK_LINES.split(text)


def _add(pool: Pool, source: str, split: str | None, origin: str, text: str) -> None:
    pool.texts.append(text)
    pool.source.append(source)
    pool.split.append(split)
    pool.origin.append(origin)


def _budget(recipe: Recipe, slice_name: str, part: Part) -> int | None:
    if part.tokens is not None:
        return part.tokens
    if part.ratio is not None:
        return int(round(part.ratio * recipe.slice_tokens[slice_name]))
    return recipe.slice_tokens[slice_name] if len(recipe.slices[slice_name]) == 1 else None


def choose(recipe: Recipe, pool: Pool, tokens: list[int], eligible: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """Per slice, per part: the chosen document indices (split's seeded group order, each document its own group;
    split's budget fill)."""
    taken = np.zeros(len(pool.texts), dtype=bool)
    rank = {origin: n for n, origin in enumerate(group_order(pool.origin, recipe.seed))}
    order = sorted(range(len(pool.texts)), key=lambda i: (rank[pool.origin[i]], i))
    plan: dict[str, list[dict[str, Any]]] = {}
    for slice_name in SPLITS:
        plan[slice_name] = []
        for part in recipe.slices.get(slice_name, ()):
            from_split = recipe.sources[part.source].kind == "split"
            wanted_split = part.split or slice_name  # split sources: which split's documents
            candidates = (i for i in order if not taken[i] and eligible[i] and pool.source[i] == part.source
                          and (not from_split or pool.split[i] == wanted_split))
            budget = _budget(recipe, slice_name, part)
            chosen, used = fill_budget(candidates, tokens.__getitem__, budget)
            taken[chosen] = True
            plan[slice_name].append({"source": part.source, "budget": budget, "tokens": used, "documents": chosen})
    return plan


def check_disjoint(recipe: Recipe, plan: dict, dedup: DedupResult) -> dict[str, int]:
    """Exact copies (normalised word sequence) and split's cross-split audit between slices; any pair is an error."""
    members = {name: [i for part in parts for i in part["documents"]] for name, parts in plan.items()}
    exact = 0
    for position, first in enumerate(SPLITS):
        for second in SPLITS[position + 1 :]:
            a, b = members[first], members[second]
            exact += int(np.isin(dedup.exact_keys[a], dedup.exact_keys[b]).sum()) if a and b else 0
    chosen = [i for name in SPLITS for i in members[name]]
    labels = [name for name in SPLITS for _ in members[name]]
    audit = audit_cross_split(labels, chosen, dedup.signatures, dedup.shingles, [str(i) for i in chosen],
                              recipe.threshold)
    near = audit.cross_pairs_at_threshold
    if exact or near:
        raise _fail(recipe.path, f"slices are not disjoint: {exact} exact and {near} near-duplicate pairs")
    return {"exact_pairs": exact, "near_pairs": near}


def _part_summary(part: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in part.items() if key != "documents"} | {"count": len(part["documents"])}


def build_corpus(recipe: Recipe, out_dir: str | Path, *, tokenizer: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Read, deduplicate, choose, check and publish the folder; returns the manifest (corpus_manifest.json, written
    last, with the sha256 of every output file under "outputs")."""
    from tqdm import tqdm

    from logminer.rendering.chat import RenderError, count_tokens, load_tokenizer

    with publish_folder(out_dir, MANIFEST) as staging:  # locked for the whole run, published whole
        try:
            loaded_tokenizer = load_tokenizer(tokenizer) if tokenizer else None
        except RenderError as error:
            raise CorpusError(str(error)) from error
        pool = read_sources(recipe)
        with tqdm(total=len(pool.texts), desc="minhash", unit="doc", disable=not progress, file=sys.stderr) as bar:
            dedup = deduplicate(pool.texts, DedupOptions(threshold=recipe.threshold), progress=bar)
        tokens = []
        for first in range(0, len(pool.texts), 256):
            tokens.extend(count_tokens(pool.texts[first : first + 256], loaded_tokenizer))
        plan = choose(recipe, pool, tokens, dedup.kept)
        disjoint = check_disjoint(recipe, plan, dedup)
        slices = {}
        for name in SPLITS:
            chosen = [i for part in plan[name] for i in part["documents"]]
            text = DOCUMENT_SEPARATOR.join(pool.texts[i] for i in chosen)
            write_atomic(staging / f"{name}.txt", text + "\n" if text else "")
            slices[name] = {"documents": len(chosen), "tokens": int(sum(tokens[i] for i in chosen)),
                            "parts": [_part_summary(part) for part in plan[name]]}
        manifest = {
            "recipe": {"path": redact_text(str(recipe.path)), "sha256": sha256_file(recipe.path)},
            "sources": {name: {"kind": s.kind, "path": redact_text(str(s.path)), "document": s.document}
                        for name, s in sorted(recipe.sources.items())},
            "files": {redact_text(path): digest for path, digest in sorted(pool.files.items())},
            "seed": recipe.seed, "threshold": recipe.threshold,
            "tokenizer": redact_text(tokenizer) if tokenizer else None,
            "pool": {"documents": len(pool.texts), "duplicates_dropped": int((~dedup.kept).sum()),
                     "redactions": dict(sorted(pool.redactions.items()))},
            "slices": slices, "disjoint": disjoint, "document_separator": DOCUMENT_SEPARATOR,
        }
        manifest["outputs"] = manifest_files(staging)
        write_atomic(staging / MANIFEST, json.dumps(redact_json(manifest), indent=2, sort_keys=True) + "\n")
    return manifest

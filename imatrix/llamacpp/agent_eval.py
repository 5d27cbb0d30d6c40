"""`imatrix eval`: judge quants on the tokens an agent writes. Every token of the eval split is scored with the
reference GGUF and each quant through libllama (imatrix.llamacpp.scoring), summarised per role kind and overall
(imatrix.llamacpp.stats), tool calls are re-decoded greedily (imatrix.llamacpp.tool_calls), and a paired bootstrap
over sessions gives CIs of every quant pair's differences. The result is one JSON-able dict (the run's record, which
`imatrix card` reads) plus a per-token parquet.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibkit.atomic import sha256_file
from calibkit.calibration_text import DOCUMENT_SEPARATOR, TEXT_COLUMN
from imatrix.llamacpp import scoring, stats, tool_calls
from imatrix.llamacpp.evaluate import EvalError, model_size
from imatrix.llamacpp.libllama import LlamaModel

FORMAT = "calibkit-agent-eval/1"


@dataclass(frozen=True)
class AgentEvalOptions:
    ctx_size: int = 512
    stride: int | None = None  # None: n_ctx/2 - 1 (every target once); n_ctx: llama-perplexity's chunks
    max_windows: int | None = None
    threads: int | None = None
    tool_calls: int = 50  # at most this many call sites (a seeded sample when there are more); 0: none
    replicates: int = 1000
    seed: int = 0


def load_documents(path: Path) -> tuple[list[scoring.Document], str]:
    """Eval documents and the bootstrap unit: a split parquet (one session per row, with its role spans) or a
    text file cut at DOCUMENT_SEPARATOR (no spans; unit 'paragraph')."""
    path = Path(path)
    if path.suffix == ".parquet":
        import polars as pl

        frame = pl.read_parquet(path)
        if TEXT_COLUMN not in frame.columns:
            raise EvalError(f"{path}: no '{TEXT_COLUMN}' column (is it a logminer split parquet?)")
        spans = frame["spans"].to_list() if "spans" in frame.columns else [None] * frame.height
        sessions = frame["session_id"].to_list() if "session_id" in frame.columns else [str(i) for i in
                                                                                         range(frame.height)]
        documents = [scoring.Document(text, tuple((s["kind"], s["start"], s["end"]) for s in spans_ or ()),
                                      str(session)) for text, spans_, session in zip(frame[TEXT_COLUMN], spans,
                                                                                     sessions)]
        return documents, "session"
    text = path.read_text(encoding="utf-8").rstrip("\n")
    return [scoring.Document(part, (), f"paragraph {i}") for i, part in
            enumerate(text.split(DOCUMENT_SEPARATOR)) if part], "paragraph"


def model_record(path: Path) -> dict[str, Any]:
    """File name, sha256, size, bits per weight and llama.cpp file type of a GGUF."""
    from gguf import GGUFReader, LlamaFileType

    size = model_size(path)
    field = GGUFReader(str(path)).fields.get("general.file_type")
    file_type = LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_") if field else None
    return {"file": Path(path).name, "sha256": sha256_file(path), "size_bytes": size.file_bytes,
            "size_gib": size.size_gib, "bpw": size.bits_per_weight, "type": file_type}


def run_agent_eval(reference: Path, quants: Sequence[Path], data: Path, options: AgentEvalOptions = AgentEvalOptions(),
                   tokens_out: Path | None = None, progress: Callable[[str, int, int], None] = lambda *a: None
                   ) -> dict[str, Any]:
    """Score, decode tool calls, summarise and bootstrap; returns the run record (see module docstring)."""
    from imatrix.llamacpp.tools import llama_cpp_version

    names = [Path(p).name for p in (reference, *quants)]
    if len(set(names)) != len(names):
        raise EvalError(f"model file names must be distinct (they name the report's rows): {', '.join(names)}")
    documents, unit = load_documents(data)
    if not documents:
        raise EvalError(f"{data}: no documents")
    models = {name: LlamaModel(Path(path), options.ctx_size, options.threads) for name, path in
              zip(names, (reference, *quants))}
    try:
        ref, quant_models = models[names[0]], {name: models[name] for name in names[1:]}
        _check_vocabularies(ref, quant_models)
        stream = scoring.build_stream(ref, documents, DOCUMENT_SEPARATOR)
        plan = scoring.windows(len(stream.tokens), options.ctx_size, options.stride, options.max_windows)
        scores = scoring.score_stream(ref, quant_models, stream.tokens, plan,
                                      lambda done: progress("score", done, len(plan)))
        sites = _sample_sites(tool_calls.call_sites(documents), options.tool_calls, options.seed)
        results = tool_calls.decode_calls(models, documents, sites, options.ctx_size,
                                          lambda done: progress("tool calls", done, len(sites)))
    finally:
        for model in models.values():
            model.close()
    if tokens_out is not None:
        _write_tokens(tokens_out, stream, scores, documents)
    return _record(reference, quants, data, documents, unit, options, stream, scores, plan, results,
                   llama_cpp_version().describe())


def _check_vocabularies(reference: LlamaModel, quants: dict[str, LlamaModel]) -> None:
    probe = "def f(x):\n    return {'a': 1}  # <start_of_turn> ü"
    for name, model in quants.items():
        if model.n_vocab != reference.n_vocab or not np.array_equal(model.tokenize(probe), reference.tokenize(probe)):
            raise EvalError(f"{name}: its vocabulary differs from the reference's; KLD needs the same tokens")


def _sample_sites(sites: list, limit: int, seed: int) -> list:
    if len(sites) <= limit:
        return sites
    chosen = np.random.default_rng(seed).choice(len(sites), size=limit, replace=False)
    return [sites[i] for i in sorted(chosen)]


def _record(reference, quants, data, documents, unit, options, stream, scores, plan, results, version) -> dict:
    names = [Path(p).name for p in (reference, *quants)]
    masks = stats.kind_masks(stream, scores)
    metrics = {name: {kind: stats.summary(scores, None if i == 0 else name, mask) for kind, mask in masks.items()}
               for i, name in enumerate(names)}
    agreement = {name: tool_calls.agreement(results, names[0], name) for name in names}
    call_docs = np.array([r.site.document for r in results], dtype=np.int64)
    call_agree = {name: np.array([r.calls[name] == r.calls[names[0]] for r in results], dtype=np.float64)
                  for name in names[1:]}
    bootstrap = stats.bootstrap(stream, scores, names[1:], len(documents), replicates=options.replicates,
                                seed=options.seed, call_docs=call_docs, call_agree=call_agree)
    with_spans = sum(1 for d in documents if d.spans)
    return _finite({
        "format": FORMAT, "llama_cpp": version, "options": asdict(options),
        "data": {"file": Path(data).name, "sha256": sha256_file(data), "documents": len(documents), "unit": unit,
                 "documents_with_spans": with_spans, "tokens": len(stream.tokens),
                 "scored_tokens": len(scores.target), "windows": len(plan)},
        "reference": names[0],
        "models": [model_record(Path(p)) for p in (reference, *quants)],
        "metrics": metrics,
        "tool_calls": {"sites": len(results), "agreement": agreement,
                       "calls": [{"document": r.site.document, "session": documents[r.site.document].session,
                                  "start": r.site.start, "end": r.site.end, "logged": r.site.logged,
                                  "decoded": r.calls, "texts": r.texts} for r in results]},
        "bootstrap": bootstrap,
    })


def _finite(value: Any) -> Any:
    """NaN / inf (e.g. a kind absent from every drawn document) become null, so the JSON is valid JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _write_tokens(path: Path, stream, scores, documents) -> None:
    """Per scored token: stream index, token id, document, session, kind, reference NLL and each quant's scores."""
    import polars as pl

    from calibkit.atomic import write_with

    columns: dict[str, Any] = {
        "target": scores.target, "token": stream.tokens[scores.target], "document": stream.doc[scores.target],
        "session": [documents[d].session for d in stream.doc[scores.target]],
        "kind": [stream.kinds[k] for k in stream.kind[scores.target]], "reference_nll": scores.reference_nll}
    for name in scores.kld:
        columns |= {f"kld:{name}": scores.kld[name], f"same_top:{name}": scores.same_top[name],
                    f"nll:{name}": scores.nll[name]}
    frame = pl.DataFrame(columns)
    write_with(Path(path), lambda p: frame.write_parquet(p))


def write_json(record: dict[str, Any], path: Path) -> None:
    from calibkit.atomic import write_atomic

    write_atomic(Path(path), json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False) + "\n")

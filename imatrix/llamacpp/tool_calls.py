"""Tool-call agreement: for each tool call in the eval split, greedy-decode the call from the text before it with the
reference and with each quant, and compare the (name, parsed arguments) each writes: against the reference's and
against the logged call (what the agent actually called).

The text before a call is its document up to the call's span (logminer's `tool_call` span: from the line naming the
tool), as the same token stream the scorer uses, cut to the last n_ctx - max_new tokens after BOS; every model gets
the same prefix and the same token budget (the logged call's length + CALL_SLACK tokens). Decoding stops at an
end-of-generation token, at the budget, or as soon as the text holds a complete call. A quant agrees with the
reference at a site when both write the same (name, arguments), or neither writes a parseable call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imatrix.llamacpp.libllama import LlamaModel
from imatrix.llamacpp.scoring import Document

CALL_SLACK = 8


def parse_tool_call(text: str) -> tuple[str, Any] | None:
    """(name, arguments) of the first JSON object in `text` with a string "name" (arguments from "arguments" or
    "parameters", a JSON string decoded); None when there is none."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            arguments = value.get("arguments", value.get("parameters"))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError:
                    pass
            return value["name"], arguments
        start = text.find("{", start + 1)
    return None


@dataclass(frozen=True)
class CallSite:
    document: int
    start: int  # character offsets of the call's span in its document
    end: int
    logged: tuple[str, Any] | None  # the call as rendered in the log, parsed; None when its arguments are not JSON


def call_sites(documents: Sequence[Document]) -> list[CallSite]:
    return [CallSite(index, start, end, parse_tool_call(document.text[start:end]))
            for index, document in enumerate(documents)
            for kind, start, end in document.spans if kind == "tool_call"]


def greedy_call(model: LlamaModel, prefix: np.ndarray, budget: int) -> tuple[str, tuple[str, Any] | None]:
    """The text `model` writes greedily after `prefix` (at most `budget` tokens) and the call parsed from it."""
    model.clear()
    logits = model.decode(prefix, 0)[0]
    written: list[bytes] = []
    position = len(prefix)
    for _ in range(budget):
        token = int(np.argmax(logits))
        if model.is_eog(token):
            break
        written.append(model.piece(token))
        text = b"".join(written).decode("utf-8", errors="replace")
        call = parse_tool_call(text)
        if call is not None or position + 1 >= model.n_ctx:
            return text, call
        logits = model.decode([token], position)[0]
        position += 1
    text = b"".join(written).decode("utf-8", errors="replace")
    return text, parse_tool_call(text)


@dataclass
class CallResult:
    site: CallSite
    calls: dict[str, tuple[str, Any] | None] = field(default_factory=dict)  # model name → parsed call
    texts: dict[str, str] = field(default_factory=dict)


def decode_calls(models: dict[str, LlamaModel], documents: Sequence[Document], sites: Sequence[CallSite],
                 n_ctx: int, progress: Callable[[int], None] = lambda done: None) -> list[CallResult]:
    """Greedy calls of every model at every site (the first model in `models` is the reference)."""
    first = next(iter(models.values()))
    results = []
    for done, site in enumerate(sites, 1):
        document = documents[site.document]
        budget = len(first.tokenize(document.text[site.start:site.end])) + CALL_SLACK
        keep = max(1, n_ctx - budget - 1)
        body = first.tokenize(document.text[:site.start])[-keep:]
        prefix = np.concatenate([[first.bos], body]).astype(np.int32)
        result = CallResult(site)
        for name, model in models.items():
            result.texts[name], result.calls[name] = greedy_call(model, prefix, min(budget, n_ctx - len(prefix)))
        results.append(result)
        progress(done)
    return results


def agreement(results: Sequence[CallResult], reference: str, model: str) -> dict[str, Any]:
    """Counts and percentages: sites where `model` does what the reference does (the same parsed call, or no
    parseable call from either), and sites where it writes exactly the logged call (of those whose logged
    arguments are JSON)."""
    total = len(results)
    logged = [r for r in results if r.site.logged is not None]
    same_as_reference = sum(1 for r in results if r.calls[model] == r.calls[reference])
    same_as_logged = sum(1 for r in logged if r.calls[model] == r.site.logged)
    parsed = sum(1 for r in results if r.calls[model] is not None)
    return {"calls": total, "parsed": parsed, "agree_reference": same_as_reference,
            "agree_reference_pct": 100.0 * same_as_reference / total if total else None,
            "logged_parseable": len(logged), "match_logged": same_as_logged,
            "match_logged_pct": 100.0 * same_as_logged / len(logged) if logged else None}

"""Per-token scores of quants against a reference, through libllama: the eval split as one token stream with each
token's document and role kind, scored window by window with the same windows for every model.

Stream: BOS, then each document's tokens (llama_tokenize with special tokens parsed, as the model reads a chat
template), documents joined by the tokens of the calibration text's separator. A token's kind is the kind of the
role span (logminer split's `spans` column) holding its first byte; documents without spans are `unknown`,
separator tokens `separator`.

Windows follow llama-perplexity: n_ctx tokens with the first replaced by BOS, and only predictions from the second
half scored (every target has at least n_ctx/2 tokens of context). With stride = n_ctx this is exactly
llama-perplexity's chunking (used for the cross-check); the default stride, n_ctx/2 - 1, makes consecutive windows
score consecutive targets, so every token after the first half window is scored exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from imatrix.llamacpp.libllama import LlamaModel

ROW_BLOCK = 32  # logits rows per numpy pass: 32 × 262144 floats = 32 MiB per temporary for Gemma 3


class ScoringError(ValueError):
    """The eval data cannot be turned into a scorable token stream."""


@dataclass(frozen=True)
class Document:
    """One eval document: its text, its role spans (kind, start, end in characters) and the session it came from."""

    text: str
    spans: tuple[tuple[str, int, int], ...] = ()
    session: str = ""


@dataclass
class TokenStream:
    tokens: np.ndarray  # int32, the stream (BOS first)
    doc: np.ndarray  # int32 document index of each token (separators: the document before them)
    kind: np.ndarray  # int16 index into `kinds`
    kinds: list[str]
    byte_start: np.ndarray  # int64 byte offset of each token in its document (-1 for BOS / separators)


def build_stream(model: LlamaModel, documents: Sequence[Document], separator: str) -> TokenStream:
    """Tokenize every document and label each token with its document and role kind (module docstring)."""
    kinds: dict[str, int] = {}

    def kind_id(name: str) -> int:
        return kinds.setdefault(name, len(kinds))

    sep_tokens = model.tokenize(separator) if separator else np.zeros(0, np.int32)
    tokens, docs, labels, starts = [np.array([model.bos], np.int32)], [np.array([0], np.int32)], \
        [np.array([kind_id("separator")], np.int16)], [np.array([-1], np.int64)]
    for index, document in enumerate(documents):
        if index:
            tokens.append(sep_tokens)
            docs.append(np.full(len(sep_tokens), index - 1, np.int32))
            labels.append(np.full(len(sep_tokens), kind_id("separator"), np.int16))
            starts.append(np.full(len(sep_tokens), -1, np.int64))
        ids = model.tokenize(document.text)
        offsets = _byte_offsets(model, ids, document, index)
        tokens.append(ids)
        docs.append(np.full(len(ids), index, np.int32))
        labels.append(_token_kinds(document, offsets, kind_id))
        starts.append(offsets)
    return TokenStream(np.concatenate(tokens), np.concatenate(docs), np.concatenate(labels), list(kinds),
                       np.concatenate(starts))


def _byte_offsets(model: LlamaModel, ids: np.ndarray, document: Document, index: int) -> np.ndarray:
    lengths = np.array([len(model.piece(t)) for t in ids], dtype=np.int64)
    expected = len(document.text.encode("utf-8"))
    if int(lengths.sum()) != expected:
        raise ScoringError(f"document {index} ({document.session or 'no session id'}): its {len(ids)} tokens "
                           f"spell {int(lengths.sum())} bytes, the text has {expected}; cannot place role spans")
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _token_kinds(document: Document, offsets: np.ndarray, kind_id: Callable[[str], int]) -> np.ndarray:
    if not document.spans:
        return np.full(len(offsets), kind_id("unknown"), np.int16)
    char_bytes = np.array([len(c.encode("utf-8")) for c in document.text], dtype=np.int64)
    char_offset = np.concatenate([[0], np.cumsum(char_bytes)])
    span_starts = np.array([char_offset[start] for _, start, _ in document.spans], dtype=np.int64)
    span_kinds = np.array([kind_id(kind) for kind, _, _ in document.spans], dtype=np.int16)
    return span_kinds[np.searchsorted(span_starts, offsets, side="right") - 1]


@dataclass(frozen=True)
class Window:
    start: int  # first stream index in the window
    first_target: int  # first stream index scored (its logits come from position first_target - 1)
    end_target: int  # one past the last stream index scored


def windows(n_tokens: int, n_ctx: int, stride: int | None = None, max_windows: int | None = None) -> list[Window]:
    """The scoring windows over a stream of n_tokens (module docstring); a last window ends at the stream's end."""
    if n_ctx < 4:
        raise ScoringError(f"context of {n_ctx} tokens is too small")
    stride = stride or n_ctx // 2 - 1
    found, covered = [], 0
    starts = list(range(0, n_tokens - n_ctx + 1, stride))
    if stride < n_ctx and starts and starts[-1] + n_ctx < n_tokens:
        starts.append(n_tokens - n_ctx)
    for start in starts:
        first = max(start + n_ctx // 2 + 1, covered)
        end = start + n_ctx
        if first < end:
            found.append(Window(start, first, end))
            covered = end
        if max_windows is not None and len(found) == max_windows:
            break
    if not found:
        raise ScoringError(f"{n_tokens} tokens do not fill one window of {n_ctx}; use a smaller --ctx-size")
    return found


@dataclass
class TokenScores:
    """Scores of every scored target: `target` stream indices; per quant KLD, same-top flag and NLL; reference NLL."""

    target: np.ndarray
    reference_nll: np.ndarray
    kld: dict[str, np.ndarray] = field(default_factory=dict)
    same_top: dict[str, np.ndarray] = field(default_factory=dict)
    nll: dict[str, np.ndarray] = field(default_factory=dict)


def window_logits(model: LlamaModel, stream: np.ndarray, window: Window) -> np.ndarray:
    """Logits (targets, n_vocab) predicting stream[first_target:end_target], the window's first token set to BOS."""
    tokens = stream[window.start:window.start + (window.end_target - window.start)].copy()
    if model.add_bos:
        tokens[0] = model.bos
    model.clear()
    outputs = range(window.first_target - 1 - window.start, window.end_target - 1 - window.start)
    return model.decode(tokens, 0, outputs)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, dtype=np.float64, keepdims=True)).astype(np.float32)


def compare_logits(reference: np.ndarray, quant: np.ndarray, targets: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(KLD(ref‖quant), same top token, quant NLL, reference NLL) per row, in float64 sums, blockwise."""
    n = len(targets)
    kld, same, nll_q, nll_r = np.empty(n), np.empty(n, bool), np.empty(n), np.empty(n)
    for lo in range(0, n, ROW_BLOCK):
        hi = min(n, lo + ROW_BLOCK)
        log_r, log_q = _log_softmax(reference[lo:hi]), _log_softmax(quant[lo:hi])
        kld[lo:hi] = (np.exp(log_r) * (log_r - log_q)).sum(axis=1, dtype=np.float64)
        same[lo:hi] = reference[lo:hi].argmax(axis=1) == quant[lo:hi].argmax(axis=1)
        rows = np.arange(hi - lo)
        nll_q[lo:hi] = -log_q[rows, targets[lo:hi]]
        nll_r[lo:hi] = -log_r[rows, targets[lo:hi]]
    return kld, same, nll_q, nll_r


def score_stream(reference: LlamaModel, quants: dict[str, LlamaModel], stream: np.ndarray, plan: list[Window],
                 progress: Callable[[int], None] = lambda done: None) -> TokenScores:
    """Score every window of `plan` with the reference and each quant (all models see the same windows)."""
    targets, ref_nll = [], []
    per = {name: ([], [], []) for name in quants}
    for done, window in enumerate(plan, 1):
        wanted = stream[window.first_target:window.end_target].astype(np.int64)
        ref_logits = window_logits(reference, stream, window)
        targets.append(np.arange(window.first_target, window.end_target))
        nll_r = None
        for name, model in quants.items():
            kld, same, nll_q, nll_r = compare_logits(ref_logits, window_logits(model, stream, window), wanted)
            for store, values in zip(per[name], (kld, same, nll_q)):
                store.append(values)
        if nll_r is None:  # no quant: the reference's own NLL
            nll_r = compare_logits(ref_logits, ref_logits, wanted)[3]
        ref_nll.append(nll_r)
        progress(done)
    scores = TokenScores(np.concatenate(targets), np.concatenate(ref_nll))
    for name, (kld, same, nll) in per.items():
        scores.kld[name], scores.same_top[name], scores.nll[name] = (np.concatenate(kld), np.concatenate(same),
                                                                     np.concatenate(nll))
    return scores

"""Windows, per-token document/role labels and the logits comparison, without a model."""

from __future__ import annotations

import numpy as np
import pytest

from imatrix.llamacpp import scoring


class ByteModel:
    """A stand-in for LlamaModel whose tokens are the text's UTF-8 bytes (id = byte + 10; BOS = 1)."""

    bos = 1
    add_bos = True

    def tokenize(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32) + 10

    def piece(self, token: int) -> bytes:
        return bytes([int(token) - 10])


@pytest.mark.parametrize("n_tokens,n_ctx", [(1000, 64), (129, 128), (777, 100)])
def test_default_windows_score_every_target_after_the_first_half_window_once(n_tokens, n_ctx):
    plan = scoring.windows(n_tokens, n_ctx)
    targets = np.concatenate([np.arange(w.first_target, w.end_target) for w in plan])
    assert np.array_equal(targets, np.arange(n_ctx // 2 + 1, n_tokens))
    assert all(w.end_target - w.start == n_ctx and w.first_target - w.start >= n_ctx // 2 + 1 for w in plan)


def test_stride_ctx_gives_llama_perplexity_chunks():
    plan = scoring.windows(1000, 128, stride=128)
    assert [(w.start, w.first_target, w.end_target) for w in plan] == [
        (c * 128, c * 128 + 65, c * 128 + 128) for c in range(1000 // 128)]
    assert len(scoring.windows(1000, 128, stride=128, max_windows=3)) == 3
    with pytest.raises(scoring.ScoringError):
        scoring.windows(100, 128)


def test_stream_labels_each_token_with_its_document_and_role_through_multibyte_text():
    text = "<u>héllo</u><a>wörld</a>"
    spans = (("template", 0, 3), ("user", 3, 8), ("template", 8, 15), ("assistant", 15, 20), ("template", 20, 24))
    documents = [scoring.Document(text, spans, "s0"), scoring.Document("plain", (), "s1")]
    stream = scoring.build_stream(ByteModel(), documents, "\n\n")
    expected = ["separator"]
    for char, kind in zip(text, [k for k, s, e in spans for _ in range(e - s)]):
        expected += [kind] * len(char.encode("utf-8"))
    expected += ["separator"] * 2 + ["unknown"] * 5
    assert [stream.kinds[k] for k in stream.kind] == expected
    assert stream.doc.tolist() == [0] * (1 + len(text.encode("utf-8")) + 2) + [1] * 5
    assert stream.tokens[0] == 1 and len(stream.tokens) == 1 + len(text.encode()) + 2 + 5


def test_compare_logits_matches_a_float64_computation():
    rng = np.random.default_rng(3)
    reference, quant = rng.normal(size=(70, 500)).astype(np.float32), rng.normal(size=(70, 500)).astype(np.float32)
    targets = rng.integers(0, 500, 70)
    kld, same, nll_q, nll_r = scoring.compare_logits(reference, quant, targets)

    def log_softmax(x):
        x = x.astype(np.float64)
        return x - x.max(1, keepdims=True) - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))

    lr, lq = log_softmax(reference), log_softmax(quant)
    assert np.allclose(kld, (np.exp(lr) * (lr - lq)).sum(1), rtol=1e-5, atol=1e-6)
    assert np.array_equal(same, reference.argmax(1) == quant.argmax(1))
    assert np.allclose(nll_q, -lq[np.arange(70), targets], atol=1e-5)
    assert np.allclose(nll_r, -lr[np.arange(70), targets], atol=1e-5)

"""Small imatrices shared by the file and merge tests, and llama-imatrix in combine-only mode."""

from __future__ import annotations

import numpy as np

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry

DENSE = "blk.0.attn_q.weight"
MOE = "blk.1.ffn_up_exps.weight"


def activations_sums(rng, rows: int, columns: int) -> np.ndarray:
    x = rng.standard_normal((rows, columns)).astype(np.float32)
    return (x.astype(np.float64) ** 2).sum(axis=0).astype(np.float32)


def small_imatrix(rng=None, with_activations: bool = False) -> Imatrix:
    rng = rng or np.random.default_rng(0)
    dense = ImatrixEntry(activations_sums(rng, 1024, 8), np.array([1024.0]))
    moe_sums = np.stack([activations_sums(rng, n, 4) if n else np.zeros(4, np.float32) for n in (300, 0, 700)])
    moe = ImatrixEntry(moe_sums, np.array([300.0, 0.0, 700.0]))
    if with_activations:
        dense.activation_sums = rng.standard_normal(dense.sums.shape).astype(np.float32) * 30
        moe.activation_sums = rng.standard_normal(moe.sums.shape).astype(np.float32) * np.array([[20], [0], [25]], np.float32)
        moe.activation_sums += np.float32(0)  # -0.0 → 0.0: an accumulator that starts at 0 never holds -0.0
    return Imatrix({MOE: moe, DENSE: dense}, ["calib.txt"], 2, 512)


def llama_imatrix_merge(inputs, output, *extra):
    """llama-imatrix in combine-only mode (no -f): it never loads the model, so -m may name a missing file."""
    from imatrix.llamacpp.tools import run_tool

    args = ["-m", "unused-model.gguf"]
    for path in inputs:
        args += ["--in-file", path]
    return run_tool("llama-imatrix", [*args, "-o", output, *extra], timeout=60)

"""Cost of the activation sums (b11434's in_sum) in the collection hooks and of the `.stats` at write time.

Section hook: the per-linear reduction with Σx (imatrix.collect.accumulators.column_sums) against Σx² alone (the
reduction before in_sum, rebuilt here as the baseline), on CPU input shapes of Gemma 3 270M at 2048 tokens; prints
µs per call and the ratio. Section write: write_gguf of a Gemma-3-270M-shaped imatrix (126 entries) with and without
activation sums (without: the legacy statistics), and the time per value of the `.stats` computation.

Usage: .venv/bin/python benchmarks/in_sum_overhead.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from imatrix.collect.accumulators import column_sums
from imatrix.files.imatrix_file import Imatrix, ImatrixEntry, write_gguf

SHAPES = ((2048, 640), (2048, 1024), (2048, 2048))  # q/k/v & gate/up inputs, attn_output, ffn_down


def squares_only(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The baseline: Σx² per column by vecdot, as the CPU hook computed it before in_sum."""
    columns = x.to(dtype).t()
    return torch.linalg.vecdot(columns, columns, dim=-1)


def best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def hook_section(repeats: int) -> None:
    torch.manual_seed(0)
    for rows, cols in SHAPES:
        x = torch.randn(rows, cols)
        base = best_of(lambda: squares_only(x, torch.float32), repeats)
        both = best_of(lambda: column_sums(x, torch.float32), repeats)
        print(f"hook  {rows}x{cols}: Σx² {1e6 * base:8.1f} µs, Σx²+Σx {1e6 * both:8.1f} µs, ratio {both / base:.2f}")


def gemma_shaped(with_activations: bool) -> Imatrix:
    rng = np.random.default_rng(0)
    entries = {}
    for layer in range(18):
        for kind, cols in (("attn_q", 640), ("attn_k", 640), ("attn_v", 640), ("attn_output", 1024),
                           ("ffn_gate", 640), ("ffn_up", 640), ("ffn_down", 2048)):
            sums = rng.gamma(2.0, 1.0, cols).astype(np.float32) * 5760
            act = rng.standard_normal(cols).astype(np.float32) * 100 if with_activations else None
            entries[f"blk.{layer}.{kind}.weight"] = ImatrixEntry(sums, [5760.0], act)
    return Imatrix(entries, ["calib.txt"], 45, 128)


def write_section(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for label, with_activations in (("legacy (no in_sum)", False), ("b11434 (in_sum)", True)):
            imatrix = gemma_shaped(with_activations)
            values = sum(e.n_values for e in imatrix.entries.values())
            seconds = best_of(lambda: write_gguf(imatrix, Path(folder) / "x.gguf"), max(3, repeats // 5))
            print(f"write {label}: {seconds * 1e3:.0f} ms for {values} values ({1e6 * seconds / values:.2f} µs/value)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    hook_section(args.repeats)
    write_section(args.repeats)


if __name__ == "__main__":
    main()

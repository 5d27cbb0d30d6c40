"""The flagship check in one run: Gemma-4-31B-shaped decoder layers in bf16 on one GPU (benchmarks/gpu_check.sh).

Prints, each against a baseline measured in the same run:
  1. collect vs plain forward at 8 x 512 tokens on a stack of Gemma-4-31B-shaped layers (target <= 1.03x);
  2. the --hybrid overhead (column energies of every weight, taken once) relative to that collection;
  3. --offload sequential vs resident tokens/s on safetensors shards (target >= 0.85x), peak device memory of both;
  4. the extrapolation to the full 31B (all layers, the real vocabulary) with --offload sequential on a 24 GB card.
`--cpu-smoke` runs the same code on a tiny stack on the CPU, so the script is proven to execute without a GPU.

The shape is Gemma 4 31B's published text config as far as it matters for the layers' cost (hidden 5376, FFN 21504,
32 heads of 256, 16 KV heads, global layers with 512-wide heads, 5 sliding : 1 full); STACK layers are built, not 60.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL_31B = dict(layers=60, vocab=262144)  # the published checkpoint's layer count and vocabulary
SHAPES = {
    "gpu": dict(hidden=5376, ffn=21504, heads=32, kv_heads=16, head_dim=256, global_head_dim=512, layers=6,
                vocab=32768, chunks=8, ctx=512, batch=8, dtype="bf16", device="cuda", repeats=5),
    "cpu-smoke": dict(hidden=256, ffn=512, heads=4, kv_heads=2, head_dim=64, global_head_dim=128, layers=6,
                      vocab=512, chunks=2, ctx=64, batch=2, dtype="fp32", device="cpu", repeats=2),
}


def gemma4_config(shape: dict, layers: int | None = None, vocab: int | None = None):
    import transformers as tf

    n_layers = layers or shape["layers"]
    return tf.Gemma4TextConfig(
        vocab_size=vocab or shape["vocab"], hidden_size=shape["hidden"], intermediate_size=shape["ffn"],
        num_hidden_layers=n_layers, num_attention_heads=shape["heads"], num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"], global_head_dim=shape["global_head_dim"], hidden_size_per_layer_input=0,
        layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n_layers)],
        sliding_window=1024, num_kv_shared_layers=0, bos_token_id=2, eos_token_id=1, pad_token_id=0,
        tie_word_embeddings=True)


def _dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int) -> float:
    """Median wall time of fn() after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def overhead(shape: dict) -> dict:
    """Sections 1 and 2 on a resident stack: plain forward, collecting forward, column energies."""
    import numpy as np
    import torch
    import transformers as tf

    from imatrix.collect.accumulators import Accumulators, collecting, column_energy, plan_targets
    from imatrix.model.naming import TensorNaming

    device = torch.device(shape["device"])
    torch.manual_seed(0)
    with device:
        model = tf.Gemma4ForCausalLM(gemma4_config(shape)).to(_dtype(shape["dtype"])).eval()
    chunks = torch.from_numpy(np.random.default_rng(0).integers(3, shape["vocab"], (shape["chunks"], shape["ctx"])))
    batch = chunks.to(device)
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats = Accumulators(plan.shapes(), device)

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=batch, use_cache=False, logits_to_keep=1)

    def collect() -> None:
        with collecting(plan, stats):
            forward()

    plain_s = _timed(forward, device, shape["repeats"])
    collect_s = _timed(collect, device, shape["repeats"])
    energy_s = _timed(lambda: column_energy(plan), device, 1)
    return {"plain_s": plain_s, "collect_s": collect_s, "energy_s": energy_s, "tokens": int(chunks.numel())}


def save_stack(shape: dict, folder: Path) -> None:
    """The stack as safetensors shards of about one layer each (what --offload sequential streams)."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    model = tf.Gemma4ForCausalLM(gemma4_config(shape)).to(_dtype(shape["dtype"]))
    layer_bytes = sum(p.numel() * p.element_size() for p in model.model.layers[0].parameters())
    model.save_pretrained(folder, max_shard_size=max(layer_bytes, 1 << 20))


def run_mode(shape: dict, folder: Path, mode: str) -> dict:
    """Section 3, one mode per process (so neither inherits the other's memory): tokens/s and peak device memory."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from imatrix.collect.accumulators import Accumulators, plan_targets
    from imatrix.model.naming import TensorNaming
    from imatrix.runners.base import RunOptions
    from imatrix.runners.resident import run_resident
    from imatrix.runners.sequential import load_skeleton, run_sequential

    device = torch.device(shape["device"])
    chunks = np.random.default_rng(1).integers(3, shape["vocab"], (shape["chunks"] * 2, shape["ctx"]))
    options = RunOptions(batch_size=shape["batch"], compute_ppl=True, progress=False)
    if mode == "resident":
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=_dtype(shape["dtype"])).to(device).eval()
    else:
        model, loader = load_skeleton(folder, shape["dtype"], device)
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats = Accumulators(plan.shapes(), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    started = time.perf_counter()
    if mode == "resident":
        perplexity = run_resident(model, chunks, plan, stats, options)
        layer_bytes = None
    else:
        perplexity, report = run_sequential(model, loader, chunks, plan, stats, options, log=lambda line: None)
        layer_bytes = report.peak_layer_bytes
    _sync(device)
    elapsed = time.perf_counter() - started
    non_layer = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                    if ".layers." not in n and not p.is_meta)
    return {"mode": mode, "run_s": elapsed, "tokens": int(chunks.size), "ppl": perplexity.value,
            "peak_device": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
            "layer_bytes": layer_bytes, "non_layer_bytes": non_layer,
            "sums": {k: float(v.double().sum()) for k, v in sorted(stats.sums.items())[:4]}}


def extrapolate(shape: dict, resident: dict, sequential: dict) -> list[str]:
    """Section 4: the full checkpoint streamed layer by layer, from this run's per-layer numbers."""
    bytes_per = 2 if shape["dtype"] == "bf16" else 4
    embedding = FULL_31B["vocab"] * shape["hidden"] * bytes_per  # tied: the head is the embedding
    layer = sequential["layer_bytes"] or 0
    stack_peak = sequential["peak_device"]
    lines = []
    if stack_peak is None:
        lines.append("peak device memory: not measured (CPU run)")
        return lines
    transient = stack_peak - sequential["non_layer_bytes"] - layer  # activations, hidden states, accumulators
    logits = shape["chunks"] * 2 * (shape["ctx"] - shape["ctx"] // 2) * FULL_31B["vocab"] * 4  # fp32 PPL logits
    full_peak = embedding + layer + transient + logits
    per_layer_s = sequential["run_s"] / shape["layers"]
    lines.append(f"full 31B ({FULL_31B['layers']} layers, vocab {FULL_31B['vocab']}), --offload sequential: "
                 f"peak ≈ {full_peak / 2**30:.1f} GiB (embedding {embedding / 2**30:.1f} + one layer "
                 f"{layer / 2**30:.2f} + activations {transient / 2**30:.2f} + PPL logits {logits / 2**30:.2f}) -> "
                 f"{'fits' if full_peak < 24 * 2**30 * 0.95 else 'does NOT fit'} a 24 GB card")
    lines.append(f"full 31B time for {sequential['tokens']} tokens: ≈ {per_layer_s * FULL_31B['layers']:.0f} s "
                 f"({per_layer_s:.2f} s per layer, this run); resident needs ≈ "
                 f"{(embedding + layer * FULL_31B['layers']) / 2**30:.0f} GiB of weights: no 24 GB card holds it")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny stack on the CPU (proves the script runs)")
    parser.add_argument("--mode", choices=["resident", "sequential"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = SHAPES["cpu-smoke" if args.cpu_smoke else "gpu"]
    if args.mode:  # child process of section 3
        print(json.dumps(run_mode(shape, Path(args.folder), args.mode)))
        return
    import torch

    if shape["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-smoke, or on a GPU machine")
    where = torch.cuda.get_device_name(0) if shape["device"] == "cuda" else "CPU"
    print(f"stack: {shape['layers']} Gemma-4-31B-shaped layers (hidden {shape['hidden']}, FFN {shape['ffn']}, "
          f"{shape['heads']}x{shape['head_dim']} heads, {shape['kv_heads']} KV), {shape['dtype']} on {where}")
    result = overhead(shape)
    ratio = result["collect_s"] / result["plain_s"]
    print(f"1. {shape['chunks']}x{shape['ctx']} tokens: plain forward {result['plain_s'] * 1e3:.1f} ms, collect "
          f"{result['collect_s'] * 1e3:.1f} ms -> collect/plain {ratio:.3f} (target <= 1.03)")
    print(f"2. --hybrid column energies (once per run) {result['energy_s'] * 1e3:.1f} ms = "
          f"{result['energy_s'] / result['collect_s']:.2f}x one {result['tokens']}-token collecting pass")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp) / "stack"
        save_stack(shape, folder)
        runs = {}
        for mode in ("resident", "sequential"):
            child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--mode", mode, "--folder", str(folder)],
                                   capture_output=True, text=True)
            if child.returncode != 0:
                raise SystemExit(f"{mode} run failed:\n{child.stderr[-3000:]}")
            runs[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    resident, sequential = runs["resident"], runs["sequential"]
    for mode, run in runs.items():
        peak = "n/a (CPU)" if run["peak_device"] is None else f"{run['peak_device'] / 2**30:.2f} GiB"
        print(f"3. {mode:>10}: {run['tokens'] / run['run_s']:9.1f} tokens/s, peak device memory {peak}, "
              f"PPL {run['ppl']:.4f}")
    print(f"3. sequential / resident tokens/s: {resident['run_s'] / sequential['run_s']:.3f} (target >= 0.85); "
          f"same statistics and PPL: {resident['sums'] == sequential['sums'] and resident['ppl'] == sequential['ppl']}")
    for line in extrapolate(shape, resident, sequential):
        print("4. " + line)


if __name__ == "__main__":
    main()

"""Resident vs layer-sequential (`--offload sequential`) collection: tokens/s and peak memory, in one run.

A random llama-shaped model is saved as safetensors shards in a temporary folder; each mode runs in its own
subprocess (so the peak RSS of one does not hide the other's) over the same chunks, and the script prints tokens/s,
the ratio sequential/resident, peak weights materialised and peak memory (RSS on CPU, max_memory_allocated on CUDA).

CPU default (tiny but not trivial):  .venv/bin/python benchmarks/collect_sequential.py
~30B-shaped stack on a GPU:          .venv/bin/python benchmarks/collect_sequential.py --device cuda --dtype bf16 \
                                        --hidden 5376 --ffn 21504 --heads 32 --kv-heads 16 --layers 4 --chunks 64 --ctx 512
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_checkpoint(folder: Path, args: argparse.Namespace) -> None:
    """Random llama of the requested shape, saved in shards of ~one layer."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config = tf.LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.ffn,
                            num_hidden_layers=args.layers, num_attention_heads=args.heads,
                            num_key_value_heads=args.kv_heads, head_dim=args.hidden // args.heads, bos_token_id=1,
                            eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    with torch.device("cpu"):
        model = tf.LlamaForCausalLM(config).to(dtype)
    layer_bytes = sum(p.numel() * p.element_size() for p in model.model.layers[0].parameters())
    model.save_pretrained(folder, max_shard_size=max(layer_bytes, 1 << 20))


def run_mode(folder: Path, mode: str, args: argparse.Namespace) -> dict:
    """One collection in this process; returns timings and memory."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from imatrix.collect.accumulators import Accumulators, plan_targets
    from imatrix.model.naming import TensorNaming
    from imatrix.runners.base import RunOptions
    from imatrix.runners.resident import run_resident
    from imatrix.runners.sequential import load_skeleton, run_sequential

    device = torch.device(args.device)
    chunks = np.random.default_rng(1).integers(3, args.vocab, (args.chunks, args.ctx))
    options = RunOptions(batch_size=args.batch_size, progress=False)
    started = time.perf_counter()
    if mode == "resident":
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, {"fp32": "float32",
                                                     "bf16": "bfloat16"}[args.dtype])).to(device).eval()
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
    else:
        model, loader = load_skeleton(folder, args.dtype, device)
    loaded = time.perf_counter()
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    stats = Accumulators(plan.shapes(), device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    run_started = time.perf_counter()
    if mode == "resident":
        perplexity = run_resident(model, chunks, plan, stats, options)
    else:
        perplexity, report = run_sequential(model, loader, chunks, plan, stats, options)
        non_layer = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                        if ".layers." not in n and not p.is_meta)
        weights = report.peak_layer_bytes + non_layer
    if device.type == "cuda":
        torch.cuda.synchronize()
    finished = time.perf_counter()
    return {
        "mode": mode, "load_s": loaded - started, "run_s": finished - run_started,
        "tokens": int(chunks.size), "ppl": perplexity.value, "peak_weights_bytes": weights,
        "peak_device_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "sums": {k: float(v.double().sum()) for k, v in sorted(stats.sums.items())[:3]},
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--ffn", type=int, default=1536)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--ctx", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mode", choices=["resident", "sequential"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.mode:  # child process
        print(json.dumps(run_mode(Path(args.folder), args.mode, args)))
        return
    with tempfile.TemporaryDirectory(prefix="imatrix-bench-") as tmp:
        folder = Path(tmp) / "model"
        build_checkpoint(folder, args)
        results = {}
        for mode in ("resident", "sequential"):
            child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--mode", mode, "--folder", str(folder)],
                                   capture_output=True, text=True, check=True)
            results[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"model: llama hidden {args.hidden}, ffn {args.ffn}, {args.layers} layers, vocab {args.vocab}, {args.dtype} "
          f"on {args.device}; {args.chunks} chunks x {args.ctx} tokens, {args.batch_size} chunks per batch")
    for mode, result in results.items():
        peak = result["peak_device_bytes"] or result["peak_rss_bytes"]
        label = "peak device alloc" if result["peak_device_bytes"] else "peak process RSS"
        print(f"{mode:>10}: load {result['load_s']:6.2f} s, collect {result['run_s']:6.2f} s = "
              f"{result['tokens'] / result['run_s']:9.1f} tokens/s; weights materialised at once "
              f"{result['peak_weights_bytes'] / 2**20:8.1f} MiB; {label} {peak / 2**20:8.1f} MiB; PPL {result['ppl']:.4f}")
    resident, sequential = results["resident"], results["sequential"]
    print(f"sequential / resident tokens/s: {resident['run_s'] / sequential['run_s']:.3f}  "
          f"(including load: {(resident['run_s'] + resident['load_s']) / (sequential['run_s'] + sequential['load_s']):.3f})")
    print(f"weights materialised: sequential / resident = "
          f"{sequential['peak_weights_bytes'] / resident['peak_weights_bytes']:.3f}")
    print("same statistics and PPL:", resident["sums"] == sequential["sums"] and resident["ppl"] == sequential["ppl"])


if __name__ == "__main__":
    main()

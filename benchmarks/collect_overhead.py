"""Collection overhead: plain forward vs collecting forward over the same chunks, measured in one run.

Sections (each prints tokens/s and the ratio collecting/plain):
  cpu-llama  a random 4-layer llama, hidden 512, on CPU (target: ratio <= 1.10);
  gpu-30b    when CUDA is available: 4 bf16 decoder layers shaped like a ~30B Gemma (hidden 5376, FFN 21504),
             8 x 512 tokens (target: ratio <= 1.03);
  gemma-270m the bundled Gemma 3 270M GGUF on CPU at -c 128, collecting with PPL as llama-imatrix does
             (anchor: llama-imatrix ~150-215 tokens/s on 2 cores); with --llama-imatrix and the tools built,
             llama-imatrix itself is timed on the same text in the same run.

Usage: .venv/bin/python benchmarks/collect_overhead.py [--sections cpu-llama,gemma-270m] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from imatrix.collect.accumulators import Accumulators, collecting, plan_targets
from imatrix.model.naming import TensorNaming
from imatrix.runners.base import RunOptions
from imatrix.runners.resident import run_resident

REPO = Path(__file__).resolve().parents[1]
TEXT = REPO / "tests" / "data" / "calib_small.txt"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_pass(model, chunks: torch.Tensor, batch: int, plan=None) -> tuple[float, float]:
    """(wall, process CPU) seconds for one pass over `chunks`: plain when plan is None, else collecting.

    CPU seconds are reported beside wall time because the development machine is shared: wall time there swings with
    other processes' load, CPU time much less."""
    device = chunks.device
    stats = Accumulators(plan.shapes(), device) if plan is not None else None
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.no_grad():
        if plan is None:
            for i in range(0, len(chunks), batch):
                model(input_ids=chunks[i:i + batch], use_cache=False, logits_to_keep=1)
        else:
            with collecting(plan, stats):
                for i in range(0, len(chunks), batch):
                    model(input_ids=chunks[i:i + batch], use_cache=False, logits_to_keep=1)
                    stats.first_nonfinite()  # the runner's once-per-batch check is part of the cost
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def time_pair(model, chunks: torch.Tensor, batch: int, plan, repeats: int) -> tuple[tuple, tuple]:
    """Median (wall, cpu) of plain and collecting passes, interleaved so both see the same load; warm-up first."""
    _one_pass(model, chunks, batch), _one_pass(model, chunks, batch, plan)
    plain, collect = [], []
    for _ in range(repeats):
        plain.append(_one_pass(model, chunks, batch))
        collect.append(_one_pass(model, chunks, batch, plan))

    def medians(runs):
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    return medians(plain), medians(collect)


def compare(label: str, model, chunks: torch.Tensor, batch: int, repeats: int) -> None:
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    tokens = chunks.numel()
    (plain, plain_cpu), (collect, collect_cpu) = time_pair(model, chunks, batch, plan, repeats)
    print(f"{label}: {len(chunks)} chunks x {chunks.shape[1]} tokens, batch {batch}, {len(plan.dense)} hooked linears")
    print(f"  plain      {tokens / plain:10.1f} tokens/s ({plain:.3f} s wall, {plain_cpu:.3f} s CPU)")
    print(f"  collecting {tokens / collect:10.1f} tokens/s ({collect:.3f} s wall, {collect_cpu:.3f} s CPU)")
    print(f"  ratio collecting/plain = {collect / plain:.3f} wall, {collect_cpu / plain_cpu:.3f} CPU time")


def cpu_llama(repeats: int) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=2048, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4)
    model = LlamaForCausalLM(config).eval()
    chunks = torch.randint(0, 2048, (4, 512))
    compare("cpu-llama (4 layers, hidden 512, fp32, CPU)", model, chunks, 4, repeats)


def gpu_30b(repeats: int) -> None:
    if not torch.cuda.is_available():
        print("gpu-30b: skipped (no CUDA device)")
        return
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=4096, hidden_size=5376, intermediate_size=21504, num_hidden_layers=4,
                              num_attention_heads=32, num_key_value_heads=16, head_dim=128,
                              layer_types=["sliding_attention"] * 3 + ["full_attention"], sliding_window=1024)
    model = Gemma3ForCausalLM(config).to("cuda", torch.bfloat16).eval()
    chunks = torch.randint(0, 4096, (8, 512), device="cuda")
    compare(f"gpu-30b (4 Gemma layers 5376/21504, bf16, {torch.cuda.get_device_name()})", model, chunks, 8, repeats)


def gemma_270m(run_llama: bool) -> None:
    from imatrix.collect.chunks import ChunkOptions, make_chunks, read_text, resolve_add_bos, tokenize
    from imatrix.model.loading import ModelOptions, gguf_add_bos, load_model, load_tokenizer, resolve_source

    source = resolve_source("gemma3-270m")
    tokenizer = load_tokenizer(source)
    add_bos, _ = resolve_add_bos(tokenizer, gguf_add_bos(source), source.label)
    tokens = tokenize(read_text(TEXT), tokenizer, parse_special=False, add_bos=add_bos)
    chunks = make_chunks(tokens, ChunkOptions(128), str(TEXT))
    model = load_model(source, ModelOptions())
    plan = plan_targets(model, TensorNaming.for_config(model.config))
    batch = RunOptions().chunks_per_batch(128)
    plain = statistics.median(_one_pass(model, torch.from_numpy(chunks), batch)[0] for _ in range(2))
    start = time.perf_counter()
    ppl = run_resident(model, chunks, plan, Accumulators(plan.shapes(), "cpu"), RunOptions(progress=False))
    collect = time.perf_counter() - start
    print(f"gemma-270m: {len(chunks)} chunks x 128 tokens from {TEXT.name}, batch {batch}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"  plain forward (no PPL)      {chunks.size / plain:8.1f} tokens/s")
    print(f"  imatrix collect (with PPL)  {chunks.size / collect:8.1f} tokens/s  PPL {ppl.value:.4f} +/- {ppl.error:.4f}")
    print("  anchor: llama-imatrix ~150-215 tokens/s on 2 cores (ANCHORS.md)")
    if run_llama:
        _time_llama_imatrix(source.gguf_path, len(chunks))


def _time_llama_imatrix(model_path: Path, n_chunks: int) -> None:
    from imatrix.llamacpp import tools as llamacpp

    if not llamacpp.tools_available(["llama-imatrix"]):
        print("  llama-imatrix: not built, skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "calib.txt"
        text.write_bytes(TEXT.read_bytes())
        start = time.perf_counter()
        run = llamacpp.imatrix(model_path, text, Path(tmp) / "out.gguf", ctx_size=128,
                               threads=torch.get_num_threads())
        elapsed = time.perf_counter() - start
    print(f"  llama-imatrix (same text, -c 128, incl. its model load) {n_chunks * 128 / elapsed:8.1f} tokens/s")
    # it times its first decode pass ("N seconds per pass"); with <= 16 chunks of 128 that pass is the whole run
    per_pass = re.search(r"([0-9.]+) seconds per pass", run.output)
    if per_pass and n_chunks <= 16:
        print(f"  llama-imatrix compute only (its own pass timer)        "
              f"{n_chunks * 128 / float(per_pass.group(1)):8.1f} tokens/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="cpu-llama,gpu-30b,gemma-270m")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--llama-imatrix", action="store_true", help="also time llama-imatrix when it is built")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    sections = set(args.sections.split(","))
    if "cpu-llama" in sections:
        cpu_llama(args.repeats)
    if "gpu-30b" in sections:
        gpu_30b(args.repeats)
    if "gemma-270m" in sections:
        gemma_270m(args.llama_imatrix)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()

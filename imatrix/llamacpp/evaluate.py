"""llama-perplexity's own PPL and KL divergence of quantized GGUFs against a reference GGUF, and GGUF sizes.

`llama-perplexity --kl-divergence-base LOGITS` runs once on the reference and stores its token ids and log-probs;
`--kl-divergence` then scores each quant on exactly those tokens. We parse the tools' printed statistics (they write
no machine-readable file). `imatrix eval` scores with libllama directly (imatrix.llamacpp.agent_eval); this module is
the independent measurement its overall KLD is checked against, on the tokens read back from the LOGITS file.
"""

from __future__ import annotations

import re
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imatrix.llamacpp import tools as llamacpp

if TYPE_CHECKING:
    import numpy as np

GIB = 1024**3
_NUMBER = r"([-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf|-nan|-inf))"
_PM = r"\s*(?:±|\+/-)\s*"


class EvalError(RuntimeError):
    """An evaluation could not be run or its output could not be read."""


@dataclass(frozen=True)
class EvalOptions:
    """What llama-perplexity is told: context size, chunk limit, threads and extra flags."""

    ctx_size: int = 512
    chunks: int | None = None
    threads: int | None = None
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class KldStats:
    """The statistics llama-perplexity prints after a --kl-divergence run."""

    ppl: float
    ppl_err: float
    ppl_base: float
    ppl_base_err: float
    ln_ppl_ratio: float
    ln_ppl_ratio_err: float
    mean_kld: float
    mean_kld_err: float
    median_kld: float
    p99_kld: float
    max_kld: float
    rms_dp_pct: float
    same_top_pct: float
    same_top_err: float


# KldStats field → regex over llama-perplexity's summary; fields in _ERROR_FIELDS also capture their ± error
_KLD_PATTERNS: dict[str, str] = {
    "ppl": rf"Mean PPL\(Q\)\s*:\s*{_NUMBER}{_PM}{_NUMBER}",
    "ppl_base": rf"Mean PPL\(base\)\s*:\s*{_NUMBER}{_PM}{_NUMBER}",
    "ln_ppl_ratio": rf"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s*:\s*{_NUMBER}{_PM}{_NUMBER}",
    "mean_kld": rf"Mean\s+KLD:\s*{_NUMBER}{_PM}{_NUMBER}",
    "median_kld": rf"Median\s+KLD:\s*{_NUMBER}",
    "p99_kld": rf"99\.0%\s+KLD:\s*{_NUMBER}",
    "max_kld": rf"Maximum KLD:\s*{_NUMBER}",
    "rms_dp_pct": rf"RMS Δp\s*:\s*{_NUMBER}",
    "same_top_pct": rf"Same top p:\s*{_NUMBER}{_PM}{_NUMBER}\s*%",
}
_ERROR_FIELDS = {"ppl": "ppl_err", "ppl_base": "ppl_base_err", "ln_ppl_ratio": "ln_ppl_ratio_err",
                 "mean_kld": "mean_kld_err", "same_top_pct": "same_top_err"}
_FINAL_PPL = re.compile(rf"Final estimate: PPL = {_NUMBER}{_PM}{_NUMBER}")


def parse_kld_output(text: str, source: str = "llama-perplexity output") -> KldStats:
    """Read the summary statistics of a `llama-perplexity --kl-divergence` run; EvalError names a missing field."""
    values: dict[str, float] = {}
    for name, pattern in _KLD_PATTERNS.items():
        match = re.search(pattern, text)
        if match is None:
            raise EvalError(f"{source}: no '{name}' statistic found (pattern {pattern!r}); "
                            f"was llama-perplexity run with --kl-divergence and did it finish?{_tail(text)}")
        values[name] = float(match.group(1))
        if name in _ERROR_FIELDS:
            values[_ERROR_FIELDS[name]] = float(match.group(2))
    return KldStats(**values)


def parse_ppl_output(text: str, source: str = "llama-perplexity output") -> tuple[float, float]:
    """PPL and its standard error from the 'Final estimate: PPL = X +/- E' line of a perplexity run."""
    match = _FINAL_PPL.search(text)
    if match is None:
        raise EvalError(f"{source}: no 'Final estimate: PPL = …' line; did llama-perplexity finish?{_tail(text)}")
    return float(match.group(1)), float(match.group(2))


def _tail(text: str) -> str:
    """The last lines of a tool's output for an error message (a damaged model makes it stop early, saying why)."""
    lines = text.rstrip().splitlines()[-llamacpp.STDERR_TAIL_LINES :]
    return "\nlast lines of its output:\n" + "\n".join(lines) if lines else "\n(it printed nothing)"


def read_kld_base_tokens(path: Path) -> tuple[int, np.ndarray]:
    """(n_ctx, token ids) stored in a `llama-perplexity --kl-divergence-base` file: the exact tokens it scored
    ("_logits_", u32 n_ctx, i32 n_vocab, i32 n_chunk, then n_ctx × n_chunk i32 tokens; log-probs follow)."""
    import numpy as np

    with open(path, "rb") as handle:
        header = handle.read(20)
        if len(header) < 20 or header[:8] != b"_logits_":
            raise EvalError(f"{path}: not a llama-perplexity --kl-divergence-base file")
        n_ctx, _, n_chunk = struct.unpack("<Iii", header[8:])
        tokens = np.frombuffer(handle.read(4 * n_ctx * n_chunk), dtype="<i4")
    if len(tokens) != n_ctx * n_chunk:
        raise EvalError(f"{path}: truncated token list ({len(tokens)} of {n_ctx * n_chunk})")
    return n_ctx, tokens.astype(np.int32)


@dataclass(frozen=True)
class ModelSize:
    """Size of a GGUF on disk and its bits per weight (tensor data bits / tensor elements, as llama.cpp reports)."""

    file_bytes: int
    tensor_bytes: int
    n_elements: int

    @property
    def size_gib(self) -> float:
        return self.file_bytes / GIB

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.tensor_bytes / self.n_elements


def model_size(path: Path) -> ModelSize:
    """Measure a GGUF with gguf.GGUFReader (tensor byte sizes and element counts from its header)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as error:  # gguf raises ValueError/struct errors on foreign or truncated files
        raise EvalError(f"{path}: not a readable GGUF file ({error})") from error
    tensor_bytes = sum(int(tensor.n_bytes) for tensor in reader.tensors)
    n_elements = sum(int(tensor.n_elements) for tensor in reader.tensors)
    if n_elements == 0:
        raise EvalError(f"{path}: GGUF holds no tensors")
    return ModelSize(Path(path).stat().st_size, tensor_bytes, n_elements)


@dataclass(frozen=True)
class EvalRow:
    """One line of the report: a model file, its size, and its scores (kld is None for the reference)."""

    path: Path
    size: ModelSize
    ppl: float
    ppl_err: float
    kld: KldStats | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class EvalReport:
    """Rows for the reference and every quant, plus what produced them."""

    rows: list[EvalRow]
    text: Path
    options: EvalOptions
    llama_cpp: str
    logs: dict[str, str] = field(default_factory=dict)


def run_eval(reference: Path, quants: Sequence[Path], text: Path, options: EvalOptions = EvalOptions(),
             logits_file: Path | None = None, progress: Callable[[str], None] = lambda message: None) -> EvalReport:
    """Score the reference once (saving its logits), then every quant against it with --kl-divergence."""
    reference, text = Path(reference), Path(text)
    for path in (reference, *quants, text):
        if not Path(path).is_file():
            raise EvalError(f"{path}: file not found")
    version = llamacpp.llama_cpp_version().describe()
    with tempfile.TemporaryDirectory(prefix="imatrix-eval-") as scratch:
        logits = Path(logits_file) if logits_file else Path(scratch) / "reference.kld"
        progress(f"reference {reference.name}: saving logits to {logits}")
        base_run = _perplexity(reference, options, ["-f", text, "--kl-divergence-base", logits])
        ppl, ppl_err = parse_ppl_output(base_run.output, f"llama-perplexity on {reference}")
        rows = [EvalRow(reference, model_size(reference), ppl, ppl_err)]
        logs = {reference.name: base_run.output}
        for quant in map(Path, quants):
            progress(f"quant {quant.name}: KL divergence against the reference")
            run = _perplexity(quant, options, ["--kl-divergence-base", logits, "--kl-divergence"])
            stats = parse_kld_output(run.output, f"llama-perplexity --kl-divergence on {quant}")
            rows.append(EvalRow(quant, model_size(quant), stats.ppl, stats.ppl_err, stats))
            logs[quant.name] = run.output
    return EvalReport(rows, text, options, version, logs)


def _perplexity(model: Path, options: EvalOptions, args: list) -> llamacpp.ToolRun:
    """One llama-perplexity run with the report's options; tool failures become EvalError with the output tail."""
    full_args: list = ["-m", model, "-c", str(options.ctx_size), *args]
    if options.chunks is not None:
        full_args += ["--chunks", str(options.chunks)]
    if options.threads:
        full_args += ["-t", str(options.threads)]
    try:
        return llamacpp.run_tool("llama-perplexity", [*full_args, *options.extra_args])
    except llamacpp.LlamaCppFailed as error:
        raise EvalError(f"evaluating {model}: {error}") from error

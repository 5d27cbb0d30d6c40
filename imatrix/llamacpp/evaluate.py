"""Quant quality report: llama-perplexity's PPL and KL divergence of quantized GGUFs against a reference GGUF.

`llama-perplexity --kl-divergence-base LOGITS` runs once on the reference and stores its token ids and log-probs;
`--kl-divergence` then scores each quant on exactly those tokens. We parse the tools' printed statistics (they write
no machine-readable file) into one row per model, and render Markdown, CSV and a bar chart.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from calibkit.atomic import write_atomic
from imatrix.llamacpp import tools as llamacpp

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


COLUMNS = ("file", "size_gib", "bpw", "ppl", "ppl_err", "median_kld", "mean_kld", "mean_kld_err", "p99_kld",
           "same_top_pct", "same_top_err")


def report_records(report: EvalReport) -> list[dict[str, object]]:
    """The table as plain records (one per model, reference first); KLD fields are None for the reference."""
    records = []
    for row in report.rows:
        kld = row.kld
        records.append({
            "file": row.name, "size_gib": row.size.size_gib, "bpw": row.size.bits_per_weight,
            "ppl": row.ppl, "ppl_err": row.ppl_err,
            "median_kld": kld.median_kld if kld else None, "mean_kld": kld.mean_kld if kld else None,
            "mean_kld_err": kld.mean_kld_err if kld else None, "p99_kld": kld.p99_kld if kld else None,
            "same_top_pct": kld.same_top_pct if kld else None, "same_top_err": kld.same_top_err if kld else None,
        })
    return records


def format_markdown(report: EvalReport) -> str:
    """Markdown table in the style quant publishers use, with a line saying how it was measured."""
    header = ("| file | size (GiB) | bpw | PPL ± err | median KLD | mean KLD ± err | KLD p99 | same top token % |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for record in report_records(report):
        is_reference = record["median_kld"] is None
        kld_cells = ("— (reference)", "—", "—", "—") if is_reference else (
            f"{record['median_kld']:.4f}", f"{record['mean_kld']:.4f} ± {record['mean_kld_err']:.4f}",
            f"{record['p99_kld']:.3f}", f"{record['same_top_pct']:.2f} ± {record['same_top_err']:.2f}")
        lines.append(f"| {record['file']} | {record['size_gib']:.3f} | {record['bpw']:.3f} | "
                     f"{record['ppl']:.4f} ± {record['ppl_err']:.4f} | " + " | ".join(kld_cells) + " |")
    chunks = "all" if report.options.chunks is None else str(report.options.chunks)
    footer = (f"\nText: `{report.text.name}`, -c {report.options.ctx_size}, chunks: {chunks}; {report.llama_cpp}. "
              "KLD and same-top-token rate are measured against the reference's logits on the same tokens.\n")
    return header + "\n".join(lines) + "\n" + footer


def format_csv(report: EvalReport) -> str:
    """CSV with full-precision numbers (empty cells for the reference's KLD fields)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in report_records(report):
        writer.writerow({key: ("" if value is None else repr(value) if isinstance(value, float) else value)
                         for key, value in record.items()})
    return buffer.getvalue()


def plot_png(report: EvalReport) -> bytes:
    """Bar chart: mean KLD (with error bars) and same-top-token % per quant; PNG bytes (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [record for record in report_records(report) if record["mean_kld"] is not None]
    names = [str(record["file"]) for record in records]
    figure, (kld_axis, top_axis) = plt.subplots(1, 2, figsize=(max(7.0, 1.3 * len(names) + 4), 4.5))
    kld_axis.bar(names, [record["mean_kld"] for record in records],
                 yerr=[record["mean_kld_err"] for record in records], color="tab:red", capsize=4)
    kld_axis.set_title("mean KLD (lower is better)", fontsize=10)
    top_axis.bar(names, [record["same_top_pct"] for record in records],
                 yerr=[record["same_top_err"] for record in records], color="tab:blue", capsize=4)
    top_axis.set_title("same top token % (higher is better)", fontsize=10)
    top_axis.set_ylim(0, 100)
    for axis in (kld_axis, top_axis):
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
        for label in axis.get_xticklabels():
            label.set_horizontalalignment("right")
    figure.tight_layout()
    buffer = io.BytesIO()
    # no timestamps in the PNG metadata, so the same report gives the same bytes
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def write_report(report: EvalReport, prefix: Path, plot: bool = True) -> list[Path]:
    """Write PREFIX.md, PREFIX.csv and (optionally) PREFIX.png atomically; return the paths written."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written = [prefix.with_name(prefix.name + ".md"), prefix.with_name(prefix.name + ".csv")]
    write_atomic(written[0], format_markdown(report))
    write_atomic(written[1], format_csv(report))
    if plot and any(row.kld for row in report.rows):
        written.append(prefix.with_name(prefix.name + ".png"))
        write_atomic(written[2], plot_png(report))
    return written


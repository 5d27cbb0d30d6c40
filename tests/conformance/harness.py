"""Build, convert, collect, compare: the steps of one conformance row (tests/conformance/test_conformance.py).

Each step writes into the row's folder and is skipped when its product already exists, so the session fixture builds
every model once and every test reads the same files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.conformance.architectures import Architecture
from tests.conformance.tokenizer import build_tokenizer, calibration_text

REPO_ROOT = Path(__file__).resolve().parents[2]
CTX, CHUNKS, THREADS = 128, 6, 2
MIN_COSINE = 0.9999
ENERGY_TOLERANCE = 1e-4  # float32 weights on both sides
ROUTING_TIE_TOKENS = 2  # MoE: a routed (token, expert) pair may move between near-tied experts (README.md)


def build_checkpoint(arch: Architecture, folder: Path, seed: int = 0) -> Path:
    """Random float32 weights for arch's config (norms randomised too, so every path carries signal)."""
    import torch
    import transformers

    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    config = arch.config()
    config.architectures = [arch.model_class]
    torch.manual_seed(seed)
    model = getattr(transformers, arch.model_class)(config).to(torch.float32)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:
                parameter.normal_(0.0, 0.2).add_(1.0 if "norm" in name else 0.0)
    model.save_pretrained(str(folder))
    if arch.published_config:
        config_path = folder / "config.json"
        config_json = json.loads(config_path.read_text())
        config_json.update(dict(arch.published_config))
        config_path.write_text(json.dumps(config_json, indent=2))
    build_tokenizer(folder)
    return folder


def _run(command: list[str], log: Path, timeout: float = 600) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               timeout=timeout, check=False)
    log.write_text(completed.stdout)
    if completed.returncode != 0:
        tail = "\n".join(completed.stdout.splitlines()[-30:])
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({completed.returncode}); log {log}:\n{tail}")


def convert(converter_dir: Path, folder: Path, extra_args: tuple[str, ...] = ()) -> Path:
    """The text GGUF, as llama.cpp's converter writes it (f32)."""
    out = folder.parent / f"{folder.name}.f32.gguf"
    if not out.is_file():
        script = Path(__file__).with_name("convert_tiny.py")
        partial = out.with_suffix(".partial")
        _run([sys.executable, str(script), str(converter_dir), str(folder), str(partial), *extra_args],
             folder.parent / f"{folder.name}.convert.log")
        os.replace(partial, out)
    return out


def text_file(root: Path) -> Path:
    path = root / "calibration.txt"
    if not path.is_file():
        path.write_text(calibration_text(CTX * CHUNKS + 16))
    return path


def collect_ours(folder: Path, text: Path) -> Path:
    """`imatrix collect --hybrid` on the HF folder, in this process (transformers is imported once for the table);
    returns the plain imatrix (from the raw sidecar, which also holds the column energies checked below)."""
    from imatrix.collect.pipeline import CollectSettings, raw_sidecar_path, run_collect
    from imatrix.files.imatrix_file import write_gguf
    from imatrix.importance.hybrid import read_raw

    out = folder.parent / f"{folder.name}.ours.imatrix.gguf"
    if not out.is_file():
        partial = out.with_name("partial." + out.name)
        lines: list[str] = []
        settings = CollectSettings(model=str(folder), data=text, output=partial, ctx_size=CTX, max_chunks=CHUNKS,
                                   dtype="fp32", accumulate="float64", compute_ppl=False, progress=False, hybrid=True)
        try:
            lines += run_collect(settings, log=lines.append)
        finally:
            (folder.parent / f"{folder.name}.collect.log").write_text("\n".join(lines) + "\n")
        plain, _ = read_raw(raw_sidecar_path(partial))  # --hybrid's sidecar: the plain statistics + energies
        write_gguf(plain, out)
        os.replace(raw_sidecar_path(partial), raw_sidecar_path(out))
    return out


def collect_theirs(gguf_path: Path, text: Path) -> Path:
    from imatrix.llamacpp import tools

    out = gguf_path.with_name(gguf_path.name.replace(".f32.gguf", ".theirs.imatrix.gguf"))
    if not out.is_file():
        partial = out.with_name("partial." + out.name)
        tools.imatrix(gguf_path, text, partial, ctx_size=CTX, chunks=CHUNKS, threads=THREADS)
        os.replace(partial, out)
    return out


def quantize_with(gguf_path: Path, imatrix: Path) -> str:
    """llama-quantize IQ2_XS --imatrix ours; returns '' on success, else the tail of the error."""
    from imatrix.llamacpp import tools

    out = gguf_path.with_name(gguf_path.name.replace(".f32.gguf", ".IQ2_XS.gguf"))
    try:
        tools.quantize(gguf_path, out, "IQ2_XS", imatrix=imatrix, threads=THREADS)
    except tools.LlamaCppFailed as error:
        return str(error)
    return ""


def gguf_column_energy(gguf_path: Path) -> dict[str, np.ndarray]:
    """‖W[:, i]‖² of every converted weight, (n_mat, ne0): what --hybrid must compute for each key."""
    import gguf

    energy = {}
    for tensor in gguf.GGUFReader(str(gguf_path)).tensors:
        data = np.asarray(tensor.data, dtype=np.float64)
        if data.ndim >= 2 and tensor.tensor_type == gguf.GGMLQuantizationType.F32:
            energy[tensor.name] = np.square(data).sum(axis=-2).reshape(-1, data.shape[-1])
    return energy


def tensor_lengths(gguf_path: Path) -> dict[str, int]:
    """Tensor name → ne0 × n_expert, as llama-quantize checks an imatrix entry against the model."""
    import gguf

    lengths = {}
    for tensor in gguf.GGUFReader(str(gguf_path)).tensors:
        shape = [int(n) for n in tensor.shape]
        lengths[tensor.name] = shape[0] * (shape[2] if len(shape) > 2 else 1)
    return lengths


@dataclass
class Comparison:
    """What differs between our imatrix and llama-imatrix's for one architecture."""

    missing: list[str] = field(default_factory=list)  # in theirs, not ours
    extra: list[str] = field(default_factory=list)  # in ours, not theirs
    bad_length: list[str] = field(default_factory=list)
    count_diffs: dict[str, int] = field(default_factory=dict)  # key → largest per-row |Δcount|
    min_cosine: float = 1.0
    worst_key: str = ""
    n_keys: int = 0
    energy_error: float = 0.0  # largest relative error of our --hybrid column energies vs the GGUF's weights
    energy_key: str = ""


def gguf_matmul_keys(gguf_path: Path) -> set[str]:
    """The block weights a llama-imatrix run would collect when it cannot run: every 2-D/3-D blk.* tensor."""
    import gguf

    return {t.name for t in gguf.GGUFReader(str(gguf_path)).tensors
            if t.name.startswith("blk.") and t.name.endswith(".weight") and len(t.shape) >= 2}


def compare(ours_path: Path, theirs_path: Path | None, model_gguf: Path) -> Comparison:
    from imatrix.collect.pipeline import raw_sidecar_path
    from imatrix.files.imatrix_file import read_imatrix
    from imatrix.importance.hybrid import read_raw

    ours = read_imatrix(ours_path)
    theirs = read_imatrix(theirs_path) if theirs_path is not None else None
    lengths = tensor_lengths(model_gguf)
    _, our_energy = read_raw(raw_sidecar_path(ours_path))
    their_energy = gguf_column_energy(model_gguf)
    expected = set(theirs.entries) if theirs is not None else gguf_matmul_keys(model_gguf)
    result = Comparison(missing=sorted(expected - set(ours.entries)), extra=sorted(set(ours.entries) - expected),
                        n_keys=len(expected))
    for key, entry in sorted(ours.entries.items()):
        if lengths.get(key) != entry.n_values:
            result.bad_length.append(f"{key}: {entry.n_values} values, the GGUF tensor needs {lengths.get(key)}")
        if key in their_energy:
            mine, truth = our_energy[key].astype(np.float64).ravel(), their_energy[key].ravel()
            error = float(np.abs(mine - truth).max() / max(np.abs(truth).max(), 1e-30)) if mine.size == truth.size \
                else float("inf")
            if error > result.energy_error:
                result.energy_error, result.energy_key = error, key
        other = theirs.entries.get(key) if theirs is not None else None
        if other is None:
            continue
        if other.sums.shape != entry.sums.shape:
            result.bad_length.append(f"{key}: shape {entry.sums.shape}, llama-imatrix {other.sums.shape}")
            continue
        diff = int(np.abs(entry.counts.astype(np.int64) - other.counts.astype(np.int64)).max())
        if diff:
            result.count_diffs[key] = diff
        a, b = entry.means().astype(np.float64).ravel(), other.means().astype(np.float64).ravel()
        cosine = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))
        if cosine < result.min_cosine:
            result.min_cosine, result.worst_key = cosine, key
    return result


@dataclass
class Row:
    """One architecture's outcome: the comparison and whether llama-quantize took our imatrix."""

    comparison: Comparison | None
    quantize_error: str
    moe: bool
    refusal: str = ""  # for rows that must be refused: the error `imatrix collect` gave before loading
    diverges: bool = False
    warnings: list[str] = field(default_factory=list)  # "warning:" lines of our collect
    llamacpp_aborts: str = ""

    def refused_problems(self) -> list[str]:
        return [] if self.refusal else ["imatrix collect did not refuse it up front"]

    def problems(self) -> list[str]:
        """Every way this row fails the suite's criteria (empty: it conforms, or is refused up front as it must)."""
        if self.comparison is None:
            return self.refused_problems()
        c, found = self.comparison, []
        if c.missing or c.extra:
            found.append(f"keys differ: missing {c.missing[:4]}, extra {c.extra[:4]}")
        if c.bad_length:
            found.append(f"lengths: {c.bad_length[:3]}")
        limit = ROUTING_TIE_TOKENS if self.moe else 0
        over = {k: d for k, d in c.count_diffs.items() if d > limit}
        if over and not self.diverges:  # diverging activations route differently downstream
            found.append(f"counts differ by more than {limit}: {dict(list(over.items())[:3])}")
        if self.diverges:
            if c.min_cosine >= MIN_COSINE:
                found.append(f"expected llama.cpp to differ (cosine {c.min_cosine:.7f}), imatrix.model.divergence is wrong")
            if not any("llama.cpp runs this checkpoint differently" in w for w in self.warnings):
                found.append("collect gave no divergence warning")
        elif c.min_cosine < MIN_COSINE:
            found.append(f"cosine {c.min_cosine:.6f} < {MIN_COSINE} at {c.worst_key}")
        if c.energy_error > ENERGY_TOLERANCE:
            found.append(f"--hybrid column energy off by {c.energy_error:.2e} at {c.energy_key}")
        if self.quantize_error:
            found.append("llama-quantize IQ2_XS refused our imatrix: " + self.quantize_error.splitlines()[-1][:200])
        return found

    def verdict(self) -> str:
        if self.comparison is None:
            return f"REFUSED up front: {self.refusal[:150]}" if self.refusal else "FAILS: not refused up front"
        c = self.comparison
        counts = "counts equal" if not c.count_diffs else f"counts within {max(c.count_diffs.values())}"
        ok = ("WARNS+DIFFERS (as documented)" if self.diverges else
              f"KEYS+ENERGIES+QUANTIZE OK; values unchecked: {self.llamacpp_aborts}" if self.llamacpp_aborts
              else "CONFORMS")
        status = ok if not self.problems() else "FAILS: " + "; ".join(self.problems())
        values = "" if self.llamacpp_aborts else f"{counts}, min cos {c.min_cosine:.7f}, "
        return f"{status:<9} keys {c.n_keys}, {values}energies ±{c.energy_error:.0e}, IQ2_XS " + (
            "ok" if not self.quantize_error else "refused")


def refusal_of(folder: Path, text: Path) -> str:
    """The NamingError `imatrix collect` raises before loading the model ('' when it does not refuse up front)."""
    from imatrix.collect.pipeline import CollectSettings, run_collect
    from imatrix.model.naming import NamingError

    lines: list[str] = []
    try:
        run_collect(CollectSettings(model=str(folder), data=text, output=folder / "refused.gguf", ctx_size=CTX,
                                    max_chunks=CHUNKS, compute_ppl=False, progress=False), log=lines.append)
    except NamingError as error:
        loaded = any(line.startswith("loaded ") for line in lines)  # the pipeline logs this after loading
        return "" if loaded else str(error)
    return ""


def run_row(arch: Architecture, root: Path, converter_dir: Path, text: Path) -> Row:
    folder = build_checkpoint(arch, root / arch.name)
    if arch.refused:
        return Row(None, "", arch.moe, refusal_of(folder, text))
    model_gguf = convert(converter_dir, folder, arch.converter_args)
    ours = collect_ours(folder, text)
    theirs = None if arch.llamacpp_aborts else collect_theirs(model_gguf, text)
    log = (folder.parent / f"{folder.name}.collect.log").read_text().splitlines()
    return Row(compare(ours, theirs, model_gguf), quantize_with(model_gguf, ours), arch.moe,
               diverges=arch.diverges, warnings=[line for line in log if line.startswith("warning:")],
               llamacpp_aborts=arch.llamacpp_aborts)

"""`imatrix allocate` end to end: llama-quantize's view of the model, the measured options, the group factors from a
probe text, the solved recipe, its predicted size, and llama-quantize --dry-run's confirmation."""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGUFReader

from imatrix.files.imatrix_file import read_imatrix
from imatrix.importance import allocate as alloc
from imatrix.importance.ggml_quant import GgmlQuantizer
from imatrix.importance.gguf_size import quantized_metadata

# llama-quantize ftype names that are also ggml type names (used as the base ftype; every quantizable tensor gets an
# explicit type from the recipe, so the base only labels general.file_type)
FTYPE_OF_TYPE = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "IQ2_XXS": 19, "IQ2_XS": 20, "IQ3_XXS": 23,
                 "IQ1_S": 24, "IQ4_NL": 25, "IQ3_S": 26, "IQ2_S": 28, "IQ4_XS": 30, "IQ1_M": 31}


@dataclass
class AllocateJob:
    model: Path
    imatrix: Path
    output: Path  # the recipe (--tensor-type-file)
    target_size: int | None = None  # bytes of the whole file, metadata included
    target_bpw: float | None = None  # bits per weight of the tensor data (llama-quantize's BPW)
    types: tuple = alloc.DEFAULT_TYPES
    validation: Path | None = None
    probe: Path | None = None
    factors: Path | None = None  # group factors (JSON) of an earlier probe, instead of probing again
    save_factors: Path | None = None  # where to write the probe's factors (JSON)
    probe_jobs: int = 1  # probe runs (llama-quantize + llama-perplexity, job.threads each) at the same time
    errors: Path | None = None  # measured options (JSON): read when it exists for the same inputs, else written
    max_rows: int = 1024
    threads: int = 1
    ctx_size: int = 512
    log: Callable[[str], None] = print
    progress: bool = True


@dataclass
class AllocateResult:
    recipe: Path
    command: str
    predicted_file_bytes: int
    data_bytes: int  # tensor data as written: every tensor padded to the alignment
    data_bytes_unpadded: int  # what llama-quantize prints as "quant size" (and its BPW)
    n_elements: int
    method: str
    base_ftype: str
    choice: dict[str, alloc.Option]
    factors: dict[str, float] = field(default_factory=dict)
    confirmed_types: bool | None = None
    objective: float = 0.0  # Σ factor × error of the choice: the model's expected mean KLD when factors were probed

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.data_bytes_unpadded / self.n_elements

    def type_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(o.qtype.name for o in self.choice.values()).items()))


def quantizable(model: Path, threads: int) -> set[str]:
    """Tensors llama-quantize quantizes: those whose type changes when every tensor is forced to F32, or to F16."""
    from imatrix.llamacpp import tools as llamacpp

    names: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="imatrix-allocate-") as folder:
        for forced in ("f32", "f16"):
            pattern = Path(folder) / f"{forced}.txt"
            pattern.write_text(f".={forced}\n")
            run = llamacpp.quantize(model, Path(folder) / "unused.gguf", "Q8_0", threads=threads,
                                    extra_args=["--dry-run", "--tensor-type-file", str(pattern)])
            names |= {name for name, (source, final) in alloc.parse_dry_run(run.output).items() if source != final}
    return names


def run_allocate(job: AllocateJob) -> AllocateResult:
    from tqdm.auto import tqdm

    quantizer = GgmlQuantizer.load()
    reader = GGUFReader(job.model)
    tensors = alloc.read_tensors(reader)
    imatrix = read_imatrix(job.imatrix)
    statistics = read_imatrix(job.validation) if job.validation is not None else imatrix
    names = quantizable(job.model, job.threads)
    targets = [tensors[name] for name in sorted(names)]
    job.log(f"{job.model}: {len(targets)} of {len(tensors)} tensors are quantized by llama-quantize")
    types = tuple(alloc.as_types(",".join(job.types)))
    key = _inputs_key(job, types)
    options = _read_errors(job.errors, key) if job.errors is not None and job.errors.exists() else None
    if options is None:
        with tqdm(total=len(targets), unit="tensor", desc="errors", disable=not job.progress,
                  dynamic_ncols=True) as bar:
            options = alloc.measure_options(reader, targets, types, imatrix, statistics, quantizer,
                                            max_rows=job.max_rows, threads=job.threads, on_done=bar.update)
        if job.errors is not None:
            _write_errors(job.errors, key, options)
    else:
        job.log(f"errors: reused {job.errors}")
    groups = {t.name: t.group for t in targets}
    meta, alignment = quantized_metadata(quantizer, job.model, file_type=FTYPE_OF_TYPE["Q8_0"],
                                         imatrix_argument=str(job.imatrix),
                                         imatrix_dataset=imatrix.datasets[0] if imatrix.datasets else None,
                                         chunk_count=imatrix.chunk_count)
    fixed = sum(alloc.padded(_stored_bytes(reader, name), alignment) for name in tensors if name not in names)
    n_elements = sum(t.columns * t.rows * t.n_mat for t in tensors.values())
    if job.target_size is not None:
        budget = job.target_size - meta - fixed
    else:
        budget = int(job.target_bpw * n_elements / 8) - fixed
    bits = 8 * budget / sum(t.columns * t.rows * t.n_mat for t in targets)
    factors = load_factors(job.factors, set(groups.values())) if job.factors is not None else (
        group_factors(job, tensors, options, groups, bits) if job.probe is not None else {})
    if job.save_factors is not None:
        from calibkit.atomic import write_atomic

        write_atomic(job.save_factors, (json.dumps(factors, indent=1, sort_keys=True) + "\n").encode())
    choice, objective, method = alloc.solve(options, budget, factors, groups, alignment)
    data = fixed + sum(alloc.padded(o.nbytes, alignment) for o in choice.values())
    unpadded = sum(_stored_bytes(reader, n) for n in tensors if n not in names) + sum(o.nbytes for o in choice.values())
    base = max(Counter(o.qtype.name for o in choice.values()).items(), key=lambda kv: (kv[0] in FTYPE_OF_TYPE, kv[1]))
    base_ftype = base[0] if base[0] in FTYPE_OF_TYPE else "Q8_0"
    write_recipe(job.output, choice)
    command = (f"llama-quantize --allow-requantize --imatrix {job.imatrix} --tensor-type-file {job.output} "
               f"{job.model} OUTPUT.gguf {base_ftype}")
    return AllocateResult(job.output, command, meta + data, data, unpadded, n_elements,
                          method, base_ftype, choice, factors, objective=objective)


def _inputs_key(job: AllocateJob, types: tuple) -> dict:
    """What the measured errors depend on: the files' contents, the candidate types and the row sample (a file
    measured for more types serves any subset of them)."""
    import hashlib

    def digest(path: Path | None) -> str | None:
        if path is None:
            return None
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                sha.update(block)
        return sha.hexdigest()

    return {"model": digest(job.model), "imatrix": digest(job.imatrix), "validation": digest(job.validation),
            "types": [t.name for t in types], "max_rows": job.max_rows}


def _read_errors(path: Path, key: dict) -> dict[str, list[alloc.Option]]:
    from gguf import GGMLQuantizationType

    try:
        saved = json.loads(path.read_text())
        inputs = saved["inputs"]
        # the same inputs and a subset of the measured types: each option's error is the same measurement
        if ({k: v for k, v in inputs.items() if k != "types"} != {k: v for k, v in key.items() if k != "types"}
                or not set(key["types"]) <= set(inputs["types"])):
            raise alloc.AllocateError(f"{path}: measured for other inputs ({inputs}); delete it to measure again")
        wanted = set(key["types"])
        return {name: [alloc.Option(GGMLQuantizationType[t], int(n), float(e)) for t, n, e in rows if t in wanted]
                for name, rows in saved["options"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise alloc.AllocateError(f"{path}: not an errors file written by imatrix allocate ({error})") from None


def _write_errors(path: Path, key: dict, options: dict[str, list[alloc.Option]]) -> None:
    from calibkit.atomic import write_atomic

    rows = {name: [[o.qtype.name, o.nbytes, o.error] for o in opts] for name, opts in sorted(options.items())}
    write_atomic(path, (json.dumps({"inputs": key, "options": rows}, indent=1) + "\n").encode())


def _stored_bytes(reader: GGUFReader, name: str) -> int:
    tensor = next(t for t in reader.tensors if t.name == name)
    return int(tensor.n_bytes)


def write_recipe(path: Path, choice: dict[str, alloc.Option]) -> None:
    from calibkit.atomic import write_atomic

    write_atomic(path, ("\n".join(alloc.recipe_lines(choice)) + "\n").encode())


def load_factors(path: Path, groups: set[str]) -> dict[str, float]:
    """{group: factor} from --save-factors' JSON; every group of this model must be there (else its errors would
    silently count with factor 1 against measured ones)."""
    try:
        factors = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise alloc.AllocateError(f"{path}: not a factors file ({error})") from None
    if not isinstance(factors, dict) or not all(isinstance(v, (int, float)) for v in factors.values()):
        raise alloc.AllocateError(f"{path}: expected a JSON object of group → number")
    missing = sorted(groups - set(factors))
    if missing:
        raise alloc.AllocateError(f"{path}: no factor for the groups {', '.join(missing)}")
    return {group: float(factors[group]) for group in groups}


def probe_choice(tensor: alloc.Tensor, options: list[alloc.Option], bits: float) -> alloc.Option:
    """The option a group is probed at: the cheapest one at or above `bits` per weight (where the allocation
    operates, so the factor is measured near the errors it weighs); the cheapest when only the best one reaches it."""
    elements = tensor.columns * tensor.rows * tensor.n_mat
    best = max(options, key=lambda o: o.nbytes)
    above = [o for o in options if o is not best and 8 * o.nbytes >= bits * elements]
    return min(above or options, key=lambda o: o.nbytes)


def group_factors(job: AllocateJob, tensors: dict[str, alloc.Tensor], options: dict[str, list[alloc.Option]],
                  groups: dict[str, str], bits: float) -> dict[str, float]:
    """KLD per unit of error for each group: that group alone at its probe option (every other tensor at its most
    precise one), quantized by llama-quantize and scored against the reference on the probe text, minus the KLD
    of the all-precise baseline. A group whose increase is below its standard error gets the standard error (the
    probe cannot tell it from zero, and a factor of 0 would make the group free)."""
    from imatrix.llamacpp import evaluate
    from imatrix.llamacpp import tools as llamacpp

    best = {name: max(opts, key=lambda o: o.nbytes) for name, opts in options.items()}
    probe = {name: probe_choice(tensors[name], opts, bits) for name, opts in options.items()}
    runs = {"baseline": best} | {group: {n: probe[n] if groups[n] == group else best[n] for n in options}
                                 for group in sorted(set(groups.values()))}

    def perplexity(model: Path, args: list) -> llamacpp.ToolRun:
        return llamacpp.run_tool("llama-perplexity", ["-m", model, "-c", job.ctx_size, "-t", job.threads, *args])

    with tempfile.TemporaryDirectory(prefix="imatrix-allocate-probe-") as scratch:
        folder = Path(scratch)
        logits = folder / "reference.kld"
        job.log(f"probe: reference logits on {job.probe}")
        perplexity(job.model, ["-f", job.probe, "--kl-divergence-base", logits])

        def score(label: str) -> evaluate.KldStats:
            """One probe run: quantize with this run's recipe, score against the reference, drop the quant."""
            recipe, quant = folder / f"{label}.txt", folder / f"{label}.gguf"
            write_recipe(recipe, runs[label])
            llamacpp.quantize(job.model, quant, "Q8_0", imatrix=job.imatrix, threads=job.threads,
                              extra_args=["--tensor-type-file", str(recipe)])
            run = perplexity(quant, ["--kl-divergence-base", logits, "--kl-divergence"])
            quant.unlink()
            job.log(f"probe: {label} scored")
            return evaluate.parse_kld_output(run.output, f"llama-perplexity --kl-divergence on {label}")

        with ThreadPoolExecutor(max_workers=max(1, job.probe_jobs)) as pool:  # each run is its own process
            stats = dict(zip(runs, pool.map(score, runs)))
    baseline = stats.pop("baseline")
    factors = {}
    for label, row in stats.items():
        increase = sum(probe[n].error - best[n].error for n in options if groups[n] == label)
        kld = max(row.mean_kld - baseline.mean_kld, row.mean_kld_err)
        factors[label] = kld / increase if increase > 0 else 0.0
        job.log(f"probe: {label}: mean KLD {row.mean_kld:.5f} ± {row.mean_kld_err:.5f} (baseline "
                f"{baseline.mean_kld:.5f}), error increase {increase:.4g}, factor {factors[label]:.4g}")
    return factors


def confirm_with_dry_run(result: AllocateResult, job: AllocateJob) -> str:
    """llama-quantize --dry-run with the recipe: every tensor's final type must be the recipe's and its printed
    tensor-data size must equal ours to its two printed decimals; an AllocateError says where they differ."""
    from imatrix.llamacpp import tools as llamacpp

    run = llamacpp.quantize(job.model, job.output.with_suffix(".unused.gguf"), result.base_ftype,
                            imatrix=job.imatrix, threads=job.threads,
                            extra_args=["--dry-run", "--tensor-type-file", str(job.output)])
    finals = alloc.parse_dry_run(run.output)
    wrong = [f"{name}: recipe {option.qtype.name}, llama-quantize {finals.get(name, ('', 'missing'))[1]}"
             for name, option in result.choice.items()
             if finals.get(name, ("", ""))[1] != option.qtype.name.lower()]
    if wrong:
        raise alloc.AllocateError("llama-quantize --dry-run disagrees with the recipe:\n  " + "\n  ".join(wrong[:20]))
    match = re.search(r"quant size\s*=\s*([\d.]+) MiB", run.output)
    if match is None:
        raise alloc.AllocateError("llama-quantize --dry-run printed no quant size:\n" + run.output[-2000:])
    printed = float(match.group(1))
    unpadded = result.data_bytes_unpadded / 2**20
    if abs(printed - unpadded) > 0.005 + 1e-9:
        raise alloc.AllocateError(f"llama-quantize --dry-run: tensor data {printed:.2f} MiB, predicted "
                                  f"{unpadded:.2f} MiB")
    return (f"llama-quantize --dry-run agrees: {len(result.choice)} tensors at the recipe's types, tensor data "
            f"{printed:.2f} MiB")

"""A Hugging Face model card (README.md) for a set of quants, written only from files of the run: the `imatrix eval`
record (PREFIX.json), the imatrix GGUF, and the `logminer split` manifest with its calibration parquet. Each number
in the card is copied from one of them, and the card ends with the list of those files and their sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibkit.atomic import sha256_file

LICENSE_PLACEHOLDER = "FILL-IN-LICENSE"  # the publisher must set the base model's license; we cannot know it
TAGS = ("gguf", "llama.cpp", "imatrix", "quantized", "agentic", "tool-use", "calibkit")


class CardError(ValueError):
    """An input of the card is missing or not what it should be."""


@dataclass(frozen=True)
class CardInputs:
    eval_record: Path
    imatrix: Path | None = None
    split_manifest: Path | None = None
    base_model: str = "FILL-IN-BASE-MODEL"
    quantized_by: str = "FILL-IN"
    title: str | None = None
    alpha: float | None = None
    gate_report: Path | None = None
    plot: str | None = None  # file name of the eval PNG, placed next to the README


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CardError(f"{path}: cannot read the {what} ({error})") from error


def imatrix_facts(path: Path) -> dict[str, Any]:
    """sha256, datasets, chunk count and size from an imatrix GGUF's metadata."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as error:  # gguf raises ValueError / struct errors on foreign files
        raise CardError(f"{path}: not a GGUF imatrix ({error})") from error

    def value(key: str) -> Any:
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    if value("general.type") != "imatrix":
        raise CardError(f"{path}: general.type is {value('general.type')!r}, not 'imatrix'")
    return {"file": Path(path).name, "sha256": sha256_file(path), "datasets": value("imatrix.datasets") or [],
            "chunk_count": value("imatrix.chunk_count"), "chunk_size": value("imatrix.chunk_size")}


def calibration_facts(manifest_path: Path) -> dict[str, Any]:
    """Split counts and tokens from manifest.json, and sessions / tokens per agent from the calibration.parquet
    beside it (when present)."""
    import polars as pl

    manifest = _read_json(manifest_path, "split manifest")
    if "counts" not in manifest or "tokens" not in manifest:
        raise CardError(f"{manifest_path}: no counts/tokens: not a logminer split manifest.json")
    facts: dict[str, Any] = {"manifest": manifest, "agents": None, "parquet": None}
    parquet = Path(manifest_path).with_name("calibration.parquet")
    if parquet.is_file():
        frame = pl.read_parquet(parquet, columns=["agent", "tokens"])
        grouped = frame.group_by("agent").agg(pl.len().alias("sessions"), pl.col("tokens").sum()).sort("agent")
        facts["agents"] = grouped.to_dicts()
        facts["parquet"] = {"file": parquet.name, "sha256": sha256_file(parquet)}
    return facts


def _cell(value: Any, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_card(inputs: CardInputs) -> str:
    record = _read_json(inputs.eval_record, "eval record")
    if record.get("format", "").split("/")[0] != "calibkit-agent-eval":
        raise CardError(f"{inputs.eval_record}: not an `imatrix eval` record (format {record.get('format')!r})")
    sources = [("eval record", Path(inputs.eval_record).name, sha256_file(inputs.eval_record))]
    reference, data = record["reference"], record["data"]
    title = inputs.title or f"{inputs.base_model.split('/')[-1]} GGUF"
    lines = ["---", f"base_model: {inputs.base_model}", f"quantized_by: {inputs.quantized_by}",
             f"license: {LICENSE_PLACEHOLDER}", "library_name: gguf", "tags:", *[f"- {tag}" for tag in TAGS], "---",
             "", f"# {title}", "",
             ("Quantized with an importance matrix calibrated on real coding-agent sessions, and judged on the tokens "
             "an agent writes: per-role KL divergence against the reference and whether each quant writes the same "
             "tool calls."), "", "## Quants", "",
             "| file | type | size (GiB) | bpw | PPL | median KLD | same top % | tool calls = reference |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model in record["models"]:
        name = model["file"]
        overall, calls = record["metrics"][name]["all"], record["tool_calls"]["agreement"][name]
        agreement = "—" if calls["agree_reference_pct"] is None or name == reference else (
            f"{calls['agree_reference_pct']:.1f}% ({calls['agree_reference']}/{calls['calls']})")
        label = f"{name} (reference)" if name == reference else name
        lines.append(f"| {label} | {model['type']} | {model['size_gib']:.3f} | {model['bpw']:.2f} | "
                     f"{overall['ppl']:.4f} | {_cell(overall.get('median_kld'), 4)} | "
                     f"{_cell(overall.get('same_top_pct'), 2)} | {agreement} |")
    lines += ["", (f"Measured with `imatrix eval` against `{reference}` on `{data['file']}` ({_eval_origin(inputs, data)}): "
              f"{data['documents']} {data['unit']}s, {data['scored_tokens']} scored tokens, windows of "
              f"{record['options']['ctx_size']} tokens, {record['tool_calls']['sites']} tool calls re-decoded "
              f"greedily; {record['llama_cpp']}."), ""]
    lines += _role_table(record)
    if inputs.plot:
        lines += ["", f"![per-role KLD and tool-call agreement]({inputs.plot})"]
    lines += ["", "## How it was made", ""]
    lines += _made_lines(inputs, record, sources)
    lines += ["", "## Where every number comes from", "", "| what | file | sha256 |", "|---|---|---|"]
    lines += [f"| {what} | `{name}` | `{digest}` |" for what, name, digest in sources]
    return "\n".join(lines) + "\n"


def _eval_origin(inputs: CardInputs, data: dict[str, Any]) -> str:
    """Whether the eval file is the split's own eval.parquet (same sha256), hence disjoint from calibration."""
    if inputs.split_manifest is None:
        return "its origin not given"
    beside = Path(inputs.split_manifest).with_name("eval.parquet")
    if beside.is_file() and sha256_file(beside) == data["sha256"]:
        return "the eval split of the `logminer split` run below: no session or near-duplicate of calibration"
    return "not the eval split beside the given manifest"


def _role_table(record: dict[str, Any]) -> list[str]:
    from imatrix.llamacpp.agent_report import interval, kinds_of, quants_of

    kinds = [k for k in kinds_of(record) if k not in ("separator",)]
    lines = ["Mean KLD by role (95% CI, bootstrap over sessions):", "",
             "| file | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for name in quants_of(record):
        cells = []
        for kind in kinds:
            value, ci = record["metrics"][name][kind].get("mean_kld"), interval(record, name, "mean_kld", kind)
            cells.append(_cell(value, 4) if not ci or ci["ci_low"] is None else
                         f"{value:.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _made_lines(inputs: CardInputs, record: dict[str, Any], sources: list) -> list[str]:
    lines = []
    if inputs.split_manifest is not None:
        facts = calibration_facts(inputs.split_manifest)
        manifest = facts["manifest"]
        sources.append(("split manifest", Path(inputs.split_manifest).name, sha256_file(inputs.split_manifest)))
        counts, tokens, options = manifest["counts"], manifest["tokens"], manifest.get("options", {})
        lines.append(f"- Calibration split: {counts.get('calibration')} sessions, {tokens.get('calibration')} tokens; "
                     f"validation {counts.get('validation')} / {tokens.get('validation')}; eval "
                     f"{counts.get('eval')} / {tokens.get('eval')} (sessions / tokens, `logminer split`, "
                     f"grouped by {options.get('group_by') or 'near-duplicate cluster'}, seed "
                     f"{options.get('split', {}).get('seed')}).")
        if facts["agents"]:
            sources.append(("calibration documents", facts["parquet"]["file"], facts["parquet"]["sha256"]))
            lines.append("- Calibration sources: " + ", ".join(
                f"{row['agent']} ({row['sessions']} sessions, {row['tokens']} tokens)" for row in facts["agents"]) + ".")
        holdout = [Path(item["path"]).name for item in manifest.get("holdout", [])]
        lines.append(f"- Held out: {', '.join(holdout) if holdout else 'no holdout benchmark given'}; "
                     f"{counts.get('contaminated', 0)} sessions removed as contaminated, {counts.get('duplicates', 0)} "
                     "as near-duplicates.")
    if inputs.imatrix is not None:
        facts = imatrix_facts(inputs.imatrix)
        sources.append(("imatrix", facts["file"], facts["sha256"]))
        lines.append(f"- imatrix `{facts['file']}` (sha256 `{facts['sha256']}`): {facts['chunk_count']} chunks of "
                     f"{facts['chunk_size']} tokens from "
                     f"{', '.join(Path(str(d)).name for d in facts['datasets']) or 'unnamed data'}.")
    if inputs.alpha is not None:
        lines.append(f"- Hybrid importance, α = {inputs.alpha:g} (`imatrix collect --hybrid --alpha {inputs.alpha:g}`).")
    if inputs.gate_report is not None:
        sources.append(("gate report", Path(inputs.gate_report).name, sha256_file(inputs.gate_report)))
        lines.append(f"- α chosen per tensor by `imatrix gate` (report `{Path(inputs.gate_report).name}`).")
    lines.append(f"- Quantized and scored with {record['llama_cpp']}.")
    return lines


def write_card(inputs: CardInputs, out_dir: Path, plot_file: Path | None = None) -> Path:
    """OUT_DIR/README.md (and the eval PNG copied beside it as eval.png when given)."""
    from calibkit.atomic import write_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if plot_file is not None:
        write_atomic(out_dir / "eval.png", Path(plot_file).read_bytes())
        inputs = CardInputs(**{**inputs.__dict__, "plot": "eval.png"})
    target = out_dir / "README.md"
    write_atomic(target, render_card(inputs))
    return target

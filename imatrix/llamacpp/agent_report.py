"""The agent-token evaluation as Markdown, CSV and a PNG, all from the run record (agent_eval's JSON dict)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from calibkit.atomic import write_atomic

KIND_ORDER = ("all", "assistant", "tool_call", "reasoning", "user", "system", "tool_result", "template", "separator",
              "unknown")
CSV_COLUMNS = ("file", "kind", "n_tokens", "ppl", "mean_kld", "mean_kld_ci_low", "mean_kld_ci_high", "median_kld",
               "p99_kld", "same_top_pct", "same_top_ci_low", "same_top_ci_high")


def kinds_of(record: dict[str, Any]) -> list[str]:
    present = set(record["metrics"][record["reference"]])
    return [kind for kind in KIND_ORDER if kind in present] + sorted(present - set(KIND_ORDER))


def quants_of(record: dict[str, Any]) -> list[str]:
    return [model["file"] for model in record["models"][1:]]


def interval(record: dict[str, Any], model: str, metric: str, kind: str) -> dict[str, Any] | None:
    for row in record["bootstrap"]["intervals"]:
        if (row["model"], row["metric"], row["kind"]) == (model, metric, kind):
            return row
    return None


def _number(value: Any, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _with_ci(record, model, metric, kind, value, digits) -> str:
    ci = interval(record, model, metric, kind)
    if value is None:
        return "—"
    if ci is None or ci["ci_low"] is None:
        return _number(value, digits)
    return f"{value:.{digits}f} [{ci['ci_low']:.{digits}f}, {ci['ci_high']:.{digits}f}]"


def format_markdown(record: dict[str, Any]) -> str:
    reference, kinds, data = record["reference"], kinds_of(record), record["data"]
    lines = [(f"Quants scored against `{reference}` on `{data['file']}`: {data['documents']} {data['unit']}s, "
             f"{data['scored_tokens']} scored tokens in {data['windows']} windows of {record['options']['ctx_size']} "
             f"tokens; {record['tool_calls']['sites']} tool calls re-decoded; {record['llama_cpp']}."), "",
             ("| file | type | size (GiB) | bpw | PPL | mean KLD | median KLD | KLD p99 | same top % | "
             "tool calls = reference | tool calls = logged |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model in record["models"]:
        name = model["file"]
        overall, calls = record["metrics"][name]["all"], record["tool_calls"]["agreement"][name]
        lines.append(f"| {name} | {model['type']} | {model['size_gib']:.3f} | {model['bpw']:.3f} | "
                     f"{overall['ppl']:.4f} | {_number(overall.get('mean_kld'), 4)} | "
                     f"{_number(overall.get('median_kld'), 4)} | {_number(overall.get('p99_kld'), 3)} | "
                     f"{_number(overall.get('same_top_pct'), 2)} | "
                     f"{'—' if name == reference else _calls(calls, 'agree_reference')} | "
                     f"{_calls(calls, 'match_logged')} |")
    lines += ["", ("Tool calls = reference: sites where the model writes the same (name, arguments) as the reference, or "
              "neither writes a parseable call; = logged: exactly the call the agent made (sites whose logged "
              "arguments are JSON).")]
    for metric, title, digits in (("mean_kld", "Mean KLD by role", 4), ("same_top_pct", "Same top token % by role", 2)):
        lines += ["", f"{title} (95% CI, bootstrap over {data['unit']}s):", "",
                  "| file | " + " | ".join(f"{k} ({record['metrics'][reference][k]['n_tokens']})" for k in kinds) + " |",
                  "|---|" + "---:|" * len(kinds)]
        for name in quants_of(record):
            cells = [_with_ci(record, name, metric, k, record["metrics"][name][k].get(metric), digits) for k in kinds]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    paired = record["bootstrap"]["paired"]
    if paired:
        lines += ["", (f"Paired differences a − b (same tokens; 95% CI over {record['bootstrap']['replicates']} "
                  f"bootstrap draws of {data['unit']}s, seed {record['bootstrap']['seed']}); resolved = the CI "
                  "excludes 0:"), "", "| a | b | metric | kind | a − b | 95% CI | resolved |",
                  "|---|---|---|---|---:|---:|---|"]
        for row in paired:
            ci = "—" if row["ci_low"] is None else f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
            lines.append(f"| {row['a']} | {row['b']} | {row['metric']} | {row['kind']} | {row['difference']:.4g} | "
                         f"{ci} | {'yes' if row['resolved'] else 'no'} |")
    return "\n".join(lines) + "\n"


def _calls(agreement: dict[str, Any], key: str) -> str:
    total = agreement["calls"] if key == "agree_reference" else agreement["logged_parseable"]
    if not total:
        return "—"
    return f"{agreement[key]}/{total} ({100.0 * agreement[key] / total:.1f}%)"


def format_csv(record: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for model in record["models"]:
        for kind in kinds_of(record):
            row = {"file": model["file"], "kind": kind, **record["metrics"][model["file"]][kind]}
            for metric, prefix in (("mean_kld", "mean_kld"), ("same_top_pct", "same_top")):
                ci = interval(record, model["file"], metric, kind) or {}
                row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"] = ci.get("ci_low"), ci.get("ci_high")
            writer.writerow({key: ("" if row.get(key) is None else repr(row[key]) if isinstance(row[key], float)
                                   else row[key]) for key in CSV_COLUMNS})
    return buffer.getvalue()


def plot_png(record: dict[str, Any]) -> bytes:
    """Per-role mean KLD bars with bootstrap CIs, and tool-call agreement with the reference, per quant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    quants, kinds = quants_of(record), [k for k in kinds_of(record) if k != "separator"]
    figure, (kld_axis, call_axis) = plt.subplots(1, 2, figsize=(max(8.0, 0.9 * len(kinds) * len(quants) + 4), 4.5),
                                                 gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(1, len(quants))
    for i, name in enumerate(quants):
        values = [record["metrics"][name][k]["mean_kld"] for k in kinds]
        cis = [interval(record, name, "mean_kld", k) or {} for k in kinds]
        # a percentile interval need not contain the point estimate on few sessions: bars are clipped at 0
        low = [max(0.0, v - c["ci_low"]) if c.get("ci_low") is not None else 0.0 for v, c in zip(values, cis)]
        high = [max(0.0, c["ci_high"] - v) if c.get("ci_high") is not None else 0.0 for v, c in zip(values, cis)]
        kld_axis.bar(np.arange(len(kinds)) + i * width, values, width, yerr=[low, high], capsize=3, label=name)
    kld_axis.set_xticks(np.arange(len(kinds)) + width * (len(quants) - 1) / 2, kinds, rotation=30, ha="right")
    kld_axis.set_title("mean KLD by role, 95% CI (lower is better)", fontsize=10)
    kld_axis.legend(fontsize=7)
    agreement = [record["tool_calls"]["agreement"][name]["agree_reference_pct"] or 0.0 for name in quants]
    call_axis.bar(range(len(quants)), agreement, color="tab:green")
    call_axis.set_xticks(range(len(quants)), quants, rotation=30, ha="right", fontsize=7)
    call_axis.set_ylim(0, 100)
    call_axis.set_title(f"tool calls = reference % (n={record['tool_calls']['sites']})", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})  # no timestamp: same record, same bytes
    plt.close(figure)
    return buffer.getvalue()


def write_report(record: dict[str, Any], prefix: Path, plot: bool = True) -> list[Path]:
    """PREFIX.json, PREFIX.md, PREFIX.csv and (with quants and plot) PREFIX.png, each written atomically."""
    from imatrix.llamacpp.agent_eval import write_json

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {suffix: prefix.with_name(prefix.name + suffix) for suffix in (".json", ".md", ".csv", ".png")}
    write_json(record, paths[".json"])
    write_atomic(paths[".md"], format_markdown(record))
    write_atomic(paths[".csv"], format_csv(record))
    written = [paths[".json"], paths[".md"], paths[".csv"]]
    if plot and quants_of(record):
        write_atomic(paths[".png"], plot_png(record))
        written.append(paths[".png"])
    return written

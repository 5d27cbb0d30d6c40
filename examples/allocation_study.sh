#!/usr/bin/env bash
# imatrix allocate against llama-quantize's stock mixes at the same file size, on Gemma 3 270M (the bundled Q4_K_M).
#
#   examples/allocation_study.sh [OUT_DIR]
#
# Steps (every product is kept in OUT_DIR and reused when it exists, so an interrupted run resumes):
#   1. imatrix collect on examples/text/mixed_prose_code.txt at -c 128 (float64 accumulators) → calib.imatrix.gguf
#      (or IMATRIX=FILE to use an existing one)
#   2. llama-quantize --imatrix calib.imatrix.gguf to each stock type in $TYPES → stock-T.gguf
#   3. imatrix allocate --target-size <bytes of stock-T.gguf>: group factors probed once (first type, on the
#      first PROBE_BYTES of the calibration text) and reused for the others, the measured errors likewise
#      (errors.json) → recipe-T.txt; llama-quantize with
#      the recipe → ours-T.gguf
#   4. llama-perplexity --kl-divergence on held-out text (this repository's README.md, examples/README.md and
#      imatrix/importance/gate.py at commit 53cfe68: prose + code, not in the calibration text), EVAL_CHUNKS chunks
#      of CTX tokens, against the Q4_K_M source → table.md (sizes, median/mean KLD ± SE, same-top %)
#   5. tensor types per group of every file → types.md
# A type T-embd-X is llama-quantize's T with --token-embedding-type X (a stock mix at a smaller size).
# Settings (environment): THREADS (2), CTX (128), EVAL_CHUNKS (24), TYPES ("IQ2_M Q2_K IQ3_M Q3_K_M IQ2_M-embd-iq4_nl"),
# PROBE_BYTES (3000), PROBE_JOBS (5), PY (the project's python), MODEL (default: the bundled Gemma 3 270M GGUF).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-examples/allocation_run}
PY=${PY:-$ROOT/.venv/bin/python}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
IMATRIX_CLI=("$PY" -c "from imatrix.cli import main; main()")
THREADS=${THREADS:-2}
CTX=${CTX:-128}
EVAL_CHUNKS=${EVAL_CHUNKS:-24}
TYPES=${TYPES:-IQ2_M Q2_K IQ3_M Q3_K_M IQ2_M-embd-iq4_nl}
PROBE_BYTES=${PROBE_BYTES:-3000}
PROBE_JOBS=${PROBE_JOBS:-5}
CAL="$ROOT/examples/text/mixed_prose_code.txt"
MODEL=${MODEL:-$("$PY" -c "from imatrix.model.default_model import default_model_gguf; print(default_model_gguf())")}
tool() { "$PY" -c "from imatrix.llamacpp.tools import find_tool; print(find_tool('$1'))"; }
QUANTIZE=$(tool llama-quantize)
PERPLEXITY=$(tool llama-perplexity)

mkdir -p "$OUT"
cd "$OUT"
exec > >(tee -a run.log) 2>&1
echo "## $(date -u +%FT%TZ) model=$MODEL threads=$THREADS ctx=$CTX eval_chunks=$EVAL_CHUNKS types=$TYPES"
"$PY" -c "from imatrix.llamacpp.tools import llama_cpp_version; print(llama_cpp_version().describe())"
timed() { local start=$SECONDS; "$@"; echo "   ($(( SECONDS - start )) s: ${*:1:3} ...)"; }

# 1. the calibration imatrix (the relative name is what llama-quantize records and what the size prediction uses)
IMX=calib.imatrix.gguf
if [ ! -f "$IMX" ]; then
    if [ -n "${IMATRIX:-}" ]; then cp "$IMATRIX" "$IMX"; else
        timed "${IMATRIX_CLI[@]}" collect "$MODEL" --data "$CAL" -c "$CTX" --accumulate float64 --no-ppl -o "$IMX"
    fi
fi
[ -f eval.txt ] || for file in README.md examples/README.md imatrix/importance/gate.py; do
    git -C "$ROOT" show "53cfe68:$file"; done > eval.txt
[ -f probe.txt ] || head -c "$PROBE_BYTES" "$CAL" > probe.txt
sha256sum "$IMX" eval.txt probe.txt

# 2.–3. stock quant, allocated quant of the same size (the first type probes the group factors, the others reuse
# them and the measured errors and run side by side)
one_type() {
    local qtype=$1 base=${1%%-embd-*} size predicted extra=()
    [ "$base" = "$qtype" ] || extra=(--token-embedding-type "${qtype##*-embd-}")  # T-embd-X: stock T, embeddings X
    [ -f "stock-$qtype.gguf" ] || timed "$QUANTIZE" --allow-requantize --imatrix "$IMX" "${extra[@]}" "$MODEL" \
        "stock-$qtype.gguf" "$base" "$THREADS" > "stock-$qtype.quantize.log" 2>&1
    size=$(stat -c %s "stock-$qtype.gguf")
    if [ ! -f "recipe-$qtype.txt" ]; then
        if [ -f factors.json ]; then factors=(--factors factors.json); else
            factors=(--probe probe.txt --probe-jobs "$PROBE_JOBS" --save-factors factors.json); fi
        timed "${IMATRIX_CLI[@]}" allocate "$MODEL" --imatrix "$IMX" --target-size "$size" "${factors[@]}" \
            --errors errors.json -c "$CTX" --threads "$THREADS" --no-progress -o "recipe-$qtype.txt" \
            > "allocate-$qtype.log" 2>&1
    fi
    [ -f "ours-$qtype.gguf" ] || timed "$QUANTIZE" --allow-requantize --imatrix "$IMX" \
        --tensor-type-file "recipe-$qtype.txt" "$MODEL" "ours-$qtype.gguf" Q8_0 "$THREADS" \
        > "ours-$qtype.quantize.log" 2>&1
    predicted=$(grep -o 'predicted file size: [0-9]*' "allocate-$qtype.log" | grep -o '[0-9]*$')
    echo "$qtype: stock $size bytes, ours $(stat -c %s "ours-$qtype.gguf") bytes (predicted $predicted)"
}
side_by_side() {  # run "$@" once per remaining argument in the background; fail if any failed
    local command=$1 pids=() pid; shift
    for arg in "$@"; do "$command" "$arg" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid"; done
}
read -r -a types <<< "$TYPES"
one_type "${types[0]}"
side_by_side one_type "${types[@]:1}"

# 4. KL divergence against the source on the held-out text (reference logits once, the quants side by side)
[ -f reference.kld ] || timed "$PERPLEXITY" -m "$MODEL" -f eval.txt -c "$CTX" --chunks "$EVAL_CHUNKS" -t "$THREADS" \
    --kl-divergence-base reference.kld > reference.perplexity.log 2>&1
score() {
    [ -f "$1.kld.log" ] || timed "$PERPLEXITY" -m "$1.gguf" -c "$CTX" --chunks "$EVAL_CHUNKS" -t "$THREADS" \
        --kl-divergence-base reference.kld --kl-divergence > "$1.kld.log" 2>&1
}
declare -A first_of=(); unique=(); copies=()  # byte-identical files are scored once
for name in $(for qtype in $TYPES; do echo "stock-$qtype ours-$qtype"; done); do
    digest=$(sha256sum "$name.gguf" | cut -c1-64)
    if [ -n "${first_of[$digest]:-}" ]; then copies+=("$name:${first_of[$digest]}"); else
        first_of[$digest]=$name; unique+=("$name"); fi
done
side_by_side score "${unique[@]}"
for pair in "${copies[@]}"; do
    echo "${pair%%:*}.gguf is byte-identical to ${pair##*:}.gguf: scored once"
    cp "${pair##*:}.kld.log" "${pair%%:*}.kld.log"
done

# 5. the tables
"$PY" - $TYPES <<'EOF'
import sys
from collections import Counter, defaultdict
from pathlib import Path

from imatrix.importance.gate import final_types_from_gguf
from imatrix.importance.allocate import LAYER
from imatrix.llamacpp.evaluate import parse_kld_output

rows = ["| type | file | bytes | Δ size vs stock | median KLD | mean KLD ± SE | same top % ± SE | PPL ± SE |",
        "|---|---|---:|---:|---:|---:|---:|---:|"]
types = ["| file | group | types (tensor count) |", "|---|---|---|"]
for qtype in sys.argv[1:]:
    stock = Path(f"stock-{qtype}.gguf").stat().st_size
    for kind in ("stock", "ours"):
        path = Path(f"{kind}-{qtype}.gguf")
        s = parse_kld_output(Path(f"{kind}-{qtype}.kld.log").read_text(), str(path))
        rows.append(f"| {qtype} | {path} | {path.stat().st_size} | {100 * (path.stat().st_size / stock - 1):+.2f}% | "
                    f"{s.median_kld:.5f} | {s.mean_kld:.5f} ± {s.mean_kld_err:.5f} | "
                    f"{s.same_top_pct:.2f} ± {s.same_top_err:.2f} | {s.ppl:.3f} ± {s.ppl_err:.3f} |")
        by_group = defaultdict(Counter)
        for name, final in final_types_from_gguf(path).items():
            if not name.endswith("norm.weight"):
                by_group[LAYER.sub("", name)][final.name] += 1
        for group, counts in sorted(by_group.items()):
            types.append(f"| {path} | {group} | {', '.join(f'{t} ×{n}' for t, n in sorted(counts.items()))} |")
Path("table.md").write_text("\n".join(rows) + "\n")
Path("types.md").write_text("\n".join(types) + "\n")
print("\n".join(rows))
EOF
echo "## done $(date -u +%FT%TZ)"

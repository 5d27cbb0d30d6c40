#!/usr/bin/env bash
# Does the hybrid α gate lower KLD on held-out text? One run on Gemma 3 270M (the bundled Q4_K_M GGUF).
#
#   examples/gate_experiment.sh SPLIT_DIR [OUT_DIR]
#
# SPLIT_DIR is the output of `logminer split` (calibration.parquet, validation.parquet, eval.txt). Steps:
#   1. imatrix collect --hybrid on calibration and on validation → raw sidecars (E[a²] and ‖W[:,i]‖²)
#   2. imatrix mix → plain (α=0), hybrid α=0.5, hybrid α=1; imatrix gate → one gated imatrix per quant type
#   3. llama-quantize each imatrix to every type in $TYPES (the source is the Q4_K_M GGUF: --allow-requantize)
#   4. imatrix eval on eval.txt: KLD against the Q4_K_M source, same-top-token %, PPL
# Settings (environment): THREADS (2), CTX (512), CAL_CHUNKS / VAL_CHUNKS / EVAL_CHUNKS (-1 / -1 / all),
# TYPES ("IQ2_XS IQ3_XXS"), ALPHAS ("0,0.25,0.5,0.75,1"), MODEL (default: the bundled Gemma 3 270M GGUF).
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 SPLIT_DIR [OUT_DIR]" >&2
    exit 2
fi
SPLIT=$(cd "$1" && pwd)
OUT=${2:-examples/gate_run}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
IMATRIX=("$PY" -c "from imatrix.cli import main; main()")
THREADS=${THREADS:-2}
CTX=${CTX:-512}
CAL_CHUNKS=${CAL_CHUNKS:--1}
VAL_CHUNKS=${VAL_CHUNKS:--1}
EVAL_CHUNKS=${EVAL_CHUNKS:-}
TYPES=${TYPES:-IQ2_XS IQ3_XXS}
ALPHAS=${ALPHAS:-0,0.25,0.5,0.75,1}
MODEL=${MODEL:-$("$PY" -c "from imatrix.model.default_model import default_model_gguf; print(default_model_gguf())")}
QUANTIZE=$("$PY" -c "from imatrix.llamacpp.tools import find_tool; print(find_tool('llama-quantize'))")

for needed in calibration.parquet validation.parquet eval.txt; do
    [ -f "$SPLIT/$needed" ] || { echo "$SPLIT/$needed is missing: run logminer split first" >&2; exit 2; }
done
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
echo "## $(date -u +%FT%TZ) model=$MODEL split=$SPLIT threads=$THREADS ctx=$CTX types=$TYPES alphas=$ALPHAS"
"$PY" -c "from imatrix.llamacpp.tools import llama_cpp_version; print(llama_cpp_version().describe())"

timed() { local start=$SECONDS; "$@"; echo "   ($(( SECONDS - start )) s: ${*:1:4} ...)"; }

# 1. raw statistics of calibration and validation (the hybrid file itself is α=0.5; only the sidecar is used)
for split in calibration validation; do
    chunks=$CAL_CHUNKS; [ "$split" = validation ] && chunks=$VAL_CHUNKS
    [ -f "$OUT/$split.imatrix.raw.gguf" ] || timed "${IMATRIX[@]}" collect -m "$MODEL" -f "$SPLIT/$split.parquet" \
        -o "$OUT/$split.imatrix.gguf" --hybrid -c "$CTX" --chunks "$chunks" --no-ppl --no-progress
done
CAL_RAW="$OUT/calibration.imatrix.raw.gguf"
VAL_RAW="$OUT/validation.imatrix.raw.gguf"

# 2. fixed mixes and the gate (one gated imatrix per type: its tensors' final types differ)
for alpha in 0 0.5 1; do
    "${IMATRIX[@]}" mix "$CAL_RAW" --alpha "$alpha" -o "$OUT/alpha$alpha.imatrix.gguf"
done
for qtype in $TYPES; do
    timed "${IMATRIX[@]}" gate "$CAL_RAW" --validation "$VAL_RAW" -m "$MODEL" --type "$qtype" --alphas "$ALPHAS" \
        --threads "$THREADS" -o "$OUT/gated-$qtype.imatrix.gguf" --table "$OUT/gate-$qtype.csv"
done

# 3. quantize
QUANTS=()
for qtype in $TYPES; do
    for label in alpha0 alpha0.5 alpha1 "gated-$qtype"; do
        target="$OUT/gemma3-270m-$qtype-${label%-"$qtype"}.gguf"
        "$QUANTIZE" --allow-requantize --imatrix "$OUT/$label.imatrix.gguf" "$MODEL" "$target" "$qtype" "$THREADS" \
            > "$target.log" 2>&1 || { tail -20 "$target.log"; exit 1; }
        QUANTS+=("$target")
    done
done

# 4. evaluate against the Q4_K_M source on the held-out eval split
EVAL_ARGS=(-m "$MODEL" -f "$SPLIT/eval.txt" -c "$CTX" -t "$THREADS" -o "$OUT/eval" --no-plot)
[ -n "$EVAL_CHUNKS" ] && EVAL_ARGS+=(--chunks "$EVAL_CHUNKS")
timed "${IMATRIX[@]}" eval "${QUANTS[@]}" "${EVAL_ARGS[@]}"
echo "## done $(date -u +%FT%TZ): $OUT/eval.md, $OUT/gate-*.csv(.md)"

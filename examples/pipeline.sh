#!/usr/bin/env bash
# The whole pipeline in miniature, on 2 CPU cores (~15-25 min on a quiet machine):
#   raw agent logs → logminer split → imatrix collect on Gemma 3 270M with (a) the calibration split, (b) generic text,
#   (c) --hybrid on the calibration split → llama-quantize IQ2_XS / IQ3_XXS with each imatrix and without one
#   → imatrix eval (PPL, KLD, same-top-token rate vs the unquantized-by-us Q4_K_M) on the eval split.
#
#   bash examples/pipeline.sh [LOGS_PATH ...]        (default: the bundled examples/logs)
#
# Environment knobs: OUT (out/pipeline), CTX (128), CHUNKS (chunks per imatrix, the same token budget for every
# source; 40), THREADS (2), GENERIC (generic text; default: WikiText-2 test from ../shared/real-logs if present, else
# examples/text/mixed_prose_code.txt), SPLIT_ARGS (extra `logminer split` options; default "--ratios 0.6,0.1,0.3" so
# the small bundled sample leaves enough eval text; add e.g. "--holdout PATH"), QTYPES ("IQ2_XS IQ3_XXS"), BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
[ -x "$BIN/imatrix" ] || BIN="$(dirname "$(command -v imatrix)")"
OUT="${OUT:-out/pipeline}"
CTX="${CTX:-128}"
CHUNKS="${CHUNKS:-40}"
SPLIT_ARGS="${SPLIT_ARGS:---ratios 0.6,0.1,0.3}"
THREADS="${THREADS:-2}"
QTYPES="${QTYPES:-IQ2_XS IQ3_XXS}"
WIKITEXT=../shared/real-logs/plain-text/wikitext-2-raw-v1_wiki.test.raw
if [ -z "${GENERIC:-}" ]; then
    if [ -f "$WIKITEXT" ]; then GENERIC="$WIKITEXT"; else GENERIC=examples/text/mixed_prose_code.txt; fi
fi
if [ "$#" -gt 0 ]; then LOGS=("$@"); else LOGS=(examples/logs); fi
export OMP_NUM_THREADS="$THREADS"

MODEL="$("$BIN/python" -c 'from imatrix.model.default_model import default_model_gguf; print(default_model_gguf())')"
QUANTIZE="$("$BIN/python" -c 'from imatrix.llamacpp.tools import find_tool; print(find_tool("llama-quantize"))')"
mkdir -p "$OUT/imatrix" "$OUT/quants" "$OUT/logs"
"$BIN/python" -c 'from imatrix.llamacpp.tools import llama_cpp_version; print(llama_cpp_version().describe())' \
    | tee "$OUT/llama-cpp-version.txt"

step() { printf '\n== %s  (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "1. logminer split ${LOGS[*]} → $OUT/split (tokens counted with the model's tokenizer)"
# shellcheck disable=SC2086  # SPLIT_ARGS is a list of options
"$BIN/logminer" split "${LOGS[@]}" -o "$OUT/split" --tokenizer "$MODEL" --no-progress $SPLIT_ARGS

step "2. imatrix collect: (a) calibration split, (b) generic text $GENERIC, (c) --hybrid; -c $CTX --chunks $CHUNKS"
collect() {  # name, data, extra options...
    local name="$1" data="$2"; shift 2
    "$BIN/imatrix" collect -m gemma3-270m -f "$data" -c "$CTX" --chunks "$CHUNKS" --no-progress \
        -o "$OUT/imatrix/$name.imatrix.gguf" "$@" 2>&1 | grep -v "de-quantizing\|Loading weights" \
        | tee "$OUT/logs/collect-$name.log"
}
collect calibration "$OUT/split/calibration.parquet"
collect generic "$GENERIC"
collect hybrid "$OUT/split/calibration.parquet" --hybrid --alpha 0.5

step "3. llama-quantize: $QTYPES × {no imatrix, calibration, generic, hybrid}"
QUANTS=()
for qtype in $QTYPES; do
    for imx in none calibration generic hybrid; do
        target="$OUT/quants/gemma3-270m-$qtype-$imx.gguf"
        args=(--allow-requantize)
        [ "$imx" = none ] || args+=(--imatrix "$OUT/imatrix/$imx.imatrix.gguf")
        if "$QUANTIZE" "${args[@]}" "$MODEL" "$target" "$qtype" "$THREADS" > "$OUT/logs/quantize-$qtype-$imx.log" 2>&1
        then
            echo "$qtype with imatrix '$imx': $(grep -o 'quant size *= *[0-9.]* MiB ([0-9.]* BPW)' \
                "$OUT/logs/quantize-$qtype-$imx.log")"
            QUANTS+=("$target")
        else
            rm -f "$target"
            echo "$qtype with imatrix '$imx': REFUSED by llama-quantize: $(grep -m1 -i 'requires\|error' \
                "$OUT/logs/quantize-$qtype-$imx.log" | sed 's/^ *//')" | tee -a "$OUT/refused.txt"
        fi
    done
done

step "4. imatrix eval on the eval split ($OUT/split/eval.txt), reference = the Q4_K_M model itself"
"$BIN/imatrix" eval -m "$MODEL" "${QUANTS[@]}" --text "$OUT/split/eval.txt" -c "$CTX" -t "$THREADS" \
    -o "$OUT/report"
step "done: $OUT/report.md, $OUT/report.csv, $OUT/report.png"

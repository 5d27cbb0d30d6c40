"""The calibration-text contract between `logminer split` (writer) and `imatrix collect` (reader).

llama-imatrix -f reads one text file, tokenises it whole and cuts it into -c sized chunks, so there is no record
separator to honour; documents are joined by one blank line (DOCUMENT_SEPARATOR; each document's trailing whitespace
stripped, the file ends with "\\n"). The split parquet holds one rendered document per row in TEXT_COLUMN; joining
its rows with DOCUMENT_SEPARATOR gives the same token stream as the split's .txt. Rendered chat templates contain
special-token text such as `<start_of_turn>`: run llama-imatrix with `--parse-special` so it becomes real tokens.
"""

from __future__ import annotations

DOCUMENT_SEPARATOR = "\n\n"
TEXT_COLUMN = "text"
SPLIT_NAMES = ("calibration", "validation", "eval")

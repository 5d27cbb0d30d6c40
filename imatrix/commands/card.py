"""`imatrix card`: a Hugging Face model card (README.md) from an `imatrix eval` record, the imatrix and the split."""

from __future__ import annotations

from pathlib import Path

import click

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("card")
@click.argument("eval_record", type=_FILE)
@click.option("--imatrix", "imatrix_file", type=_FILE, help="The imatrix GGUF the quants were made with.")
@click.option("--split-manifest", type=_FILE,
              help="logminer split's manifest.json (its calibration.parquet beside it gives the per-agent counts).")
@click.option("--base-model", default="FILL-IN-BASE-MODEL", show_default=True,
              help="Hugging Face id of the model that was quantized (YAML base_model).")
@click.option("--quantized-by", default="FILL-IN", show_default=True, help="Who made the quants (YAML quantized_by).")
@click.option("--title", default=None, help="Card title  [default: BASE-MODEL name + ' GGUF']")
@click.option("--alpha", type=float, default=None, help="Hybrid importance α the imatrix was collected with.")
@click.option("--gate-report", type=_FILE, default=None, help="`imatrix gate` report, when α was chosen per tensor.")
@click.option("--output", "-o", "out_dir", type=Path, default=Path("."), show_default=True,
              help="Folder for README.md (and eval.png, copied from EVAL_RECORD's PNG when it exists).")
def card(eval_record: Path, imatrix_file: Path | None, split_manifest: Path | None, base_model: str,
         quantized_by: str, title: str | None, alpha: float | None, gate_report: Path | None, out_dir: Path) -> None:
    """Write a model card for the quants scored in EVAL_RECORD (the PREFIX.json of `imatrix eval`).

    The card has the YAML header Hugging Face reads (base_model, quantized_by, tags, and a license placeholder
    you must fill in), the quant table (file, type, size, bpw, PPL, median KLD, same-top %, tool-call agreement),
    per-role KLD with CIs, how the quants were made (calibration sources and token counts, holdout, imatrix
    sha256, α, llama.cpp version), and the list of files every number was copied from.
    """
    from imatrix.card import CardError, CardInputs, write_card

    plot = eval_record.with_suffix(".png")
    inputs = CardInputs(eval_record, imatrix_file, split_manifest, base_model, quantized_by, title, alpha,
                        gate_report)
    try:
        target = write_card(inputs, out_dir, plot if plot.is_file() else None)
    except CardError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {target}")

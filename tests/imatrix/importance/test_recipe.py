"""`imatrix allocate` end to end: the base ftype table is llama.cpp's, the recipe file is the solver's choice as
--tensor-type-file lines, and on the real model the predicted size is the written file's, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFWriter, LlamaFileType

from imatrix.importance import allocate as alloc
from imatrix.importance.recipe import (
    FTYPE_OF_TYPE,
    AllocateResult,
    _stored_bytes,
    write_recipe,
)


def test_ftype_table_is_gguf_py_llama_file_type():
    for name, value in FTYPE_OF_TYPE.items():
        assert LlamaFileType[f"MOSTLY_{name}"].value == value
        assert T[name]  # also a ggml tensor type name: the recipe's types can label the file


def test_write_recipe_writes_the_solver_choice_as_tensor_type_lines(tmp_path):
    choice = {"blk.0.ffn_down.weight": alloc.Option(T.Q4_K, 100, 0.5), "token_embd.weight": alloc.Option(T.Q8_0, 9, 0)}
    write_recipe(tmp_path / "recipe.txt", choice)
    assert (tmp_path / "recipe.txt").read_text() == "^blk\\.0\\.ffn_down\\.weight$=q4_k\n^token_embd\\.weight$=q8_0\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "recipe.txt"]  # written atomically: no temporary left


def test_result_counts_types_and_bits_per_weight():
    choice = {"a": alloc.Option(T.Q4_K, 10, 0), "b": alloc.Option(T.Q4_K, 10, 0), "c": alloc.Option(T.Q8_0, 10, 0)}
    result = AllocateResult(None, "", 0, 0, data_bytes_unpadded=3000, n_elements=6000, method="DP", base_ftype="Q8_0",
                            choice=choice)
    assert result.type_counts() == {"Q4_K": 2, "Q8_0": 1} and result.bits_per_weight == 4.0


def test_stored_bytes_are_the_tensor_bytes_in_the_file(tmp_path):
    writer = GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_tensor("a.weight", np.zeros((3, 5), np.float32))
    writer.add_tensor("b.weight", np.zeros(7, np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader = GGUFReader(str(tmp_path / "m.gguf"))
    assert (_stored_bytes(reader, "a.weight"), _stored_bytes(reader, "b.weight")) == (60, 14)


@pytest.mark.slow
@pytest.mark.llamacpp
def test_real_model_recipe_size_is_byte_exact(tmp_path_factory):
    """On the real 270M with the session's imatrix: the recipe fits the target, llama-quantize accepts it, the
    file it writes has exactly the predicted size, and a second run writes the same recipe."""
    from imatrix.importance.recipe import (
        AllocateJob,
        confirm_with_dry_run,
        run_allocate,
    )
    from imatrix.llamacpp import tools as llamacpp
    from tests.imatrix.llamacpp_artifacts import session_artifacts

    artifacts = session_artifacts(tmp_path_factory)
    imatrix = artifacts.ours_imatrix()
    folder = tmp_path_factory.mktemp("allocate")
    recipes = []
    for attempt in range(2):
        job = AllocateJob(artifacts.model, imatrix, folder / f"recipe{attempt}.txt", target_size=150 * 2**20,
                          types=("Q4_0", "Q5_0", "IQ4_NL", "Q8_0", "IQ2_XS"), max_rows=128, threads=2,
                          progress=False, log=lambda line: None)
        result = run_allocate(job)
        recipes.append(job.output.read_bytes())
    assert recipes[0] == recipes[1]
    assert result.predicted_file_bytes <= 150 * 2**20
    assert "agrees" in confirm_with_dry_run(result, job)
    out = folder / "allocated.gguf"
    llamacpp.quantize(artifacts.model, out, result.base_ftype, imatrix=imatrix, threads=2,
                      extra_args=["--tensor-type-file", str(job.output)])
    assert out.stat().st_size == result.predicted_file_bytes
    from imatrix.importance.gate import final_types_from_gguf

    finals = final_types_from_gguf(out)
    assert all(finals[name] == option.qtype for name, option in result.choice.items())

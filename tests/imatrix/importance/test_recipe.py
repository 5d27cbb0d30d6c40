"""`imatrix allocate`'s recipe module: the base ftype table is llama.cpp's, the recipe file is the solver's choice as
--tensor-type-file lines, the result's counts. (On the real model, predicted size = written file's, byte for byte:
tests/imatrix/importance/test_allocate.py, kept there with the other real-model allocation tests.)"""

from __future__ import annotations

import numpy as np
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

"""Run llama.cpp's convert_hf_to_gguf.py on a tiny checkpoint, with one change: the vocabulary step.

Usage: python convert_tiny.py CONVERTER_DIR MODEL_DIR OUT.gguf [CONVERTER OPTIONS...]
Every architecture's tensor conversion (names, splits, fusions, permutations) is the converter's own code. Only its
set_vocab is replaced by the converter's own llama-HF vocab writer (`_set_vocab_llama_hf`, no space prefix), because the tiny character
tokenizer of tests/conformance/tokenizer.py has no pre-tokenizer hash the per-architecture vocab code would accept.
"""

import sys
from pathlib import Path


def main() -> None:
    converter_dir, model_dir, out = (Path(arg) for arg in sys.argv[1:4])
    sys.path.insert(0, str(converter_dir))
    import convert_hf_to_gguf as converter
    from conversion.base import TextModel

    prepare_metadata = TextModel.prepare_metadata

    def with_tiny_vocab(model, vocab_only):
        # every text model (also one a wrapper such as Mistral3's delegates to) writes the llama-HF vocab
        model.set_vocab = lambda: set_vocab(model)
        return prepare_metadata(model, vocab_only)

    def set_vocab(model):
        model._set_vocab_llama_hf()
        model.gguf_writer.add_add_space_prefix(False)  # as the tokenizer.json: no "▁" before the first character

    TextModel.prepare_metadata = with_tiny_vocab
    sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(out), "--outtype", "f32",
                # a neutral general.name: llama.cpp sets token attributes by model name (e.g. phi3's <|end|>)
                "--model-name", "conformance-tiny", *sys.argv[4:]]
    converter.main()


if __name__ == "__main__":
    main()

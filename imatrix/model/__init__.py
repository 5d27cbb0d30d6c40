"""The model: loading with transformers, the built-in Gemma 3 270M default, HF → GGUF tensor names."""

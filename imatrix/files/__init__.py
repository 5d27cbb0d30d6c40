"""Where results go: imatrix files (GGUF and legacy .dat) read, written, merged and compared."""

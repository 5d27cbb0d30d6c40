"""llama.cpp's own tools: finding and running them, and the PPL / KLD report of quants built on llama-perplexity."""

"""Importance beyond E[a²]: the hybrid mix with ‖W[:,i]‖² and its per-tensor α gate on llama.cpp's quantizer."""

"""How the model is run over the chunks: `resident` (whole model on one device), `sequential` (one decoder layer at
a time), `distributed` (torchrun data-parallel), `device_map` (accelerate placement); `dispatch` picks one. Runners
feed a `collector.Statistics` through `collector.collecting` and report progress and perplexity; they never write
files (checkpoints are imatrix.checkpoint's)."""

"""How the model is run over the chunks, behind one interface (base.Runner, served a base.RunRequest):
`resident` (whole model on one device), `sequential` (one decoder layer at a time), `distributed` (torchrun
data-parallel), `device_map` (accelerate placement); `registry.runner_for` picks one. Runners feed
imatrix.collect.accumulators.Accumulators through `collecting` and report progress and perplexity; they never write
files (checkpoints are imatrix.collect.checkpoint's)."""

"""What is collected and how a run is driven: hooks and accumulators, token chunks, checkpoints, the pipeline."""

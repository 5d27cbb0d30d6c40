"""How the model is run over the chunks: `resident` (whole model on one device). Runners feed a
`collector.Statistics` through `collector.collecting` and report progress and perplexity; they never write files."""

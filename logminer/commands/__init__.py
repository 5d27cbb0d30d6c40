"""The click commands of `logminer`: parse options, call the pipelines, print."""

"""Stage 1, reading: files and folders → the format table → Session / Skipped / Rejected events."""

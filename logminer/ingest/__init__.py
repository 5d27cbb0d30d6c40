"""Stage 2, ingest: redact, clean, score and filter sessions, every record accounted for, into sessions.parquet."""

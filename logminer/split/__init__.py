"""Stage 3, split: dedup (MinHash LSH), decontamination against holdouts, group assignment, audit, outputs."""

"""Transcript readers, one module per format; the table of formats and the reader contract are in
logminer/reading/registry.py."""

"""What logminer and imatrix share: atomic file publishing, the lazy click group, the calibration-text contract.

Imports nothing from either tool (tests/test_architecture.py checks the import graph)."""

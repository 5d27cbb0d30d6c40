"""logminer: coding-agent and tool-use logs → clean, redacted, deduplicated calibration / validation / eval splits."""

__version__ = "0.1.0"

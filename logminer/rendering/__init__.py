"""Sessions → the text the model sees: its chat template (or a bundled one) and token counts."""

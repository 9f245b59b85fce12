"""Confidence per extracted value: token probabilities of the value's own tokens, combined
with grounding, Reflexion and agreement between units, calibrated on held-out data."""

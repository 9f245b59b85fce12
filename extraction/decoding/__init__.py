"""Decoding: prompts into JSON answers, constrained by the schema (``generation``), batched
with padding (``batched``) or packed without it (``packed``)."""

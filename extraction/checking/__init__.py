"""Checking answers: pydantic validation, grounding values in the source, and the
Reflexion loop that retries with feedback."""

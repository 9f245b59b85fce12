"""Annotated data that evaluation and fine-tuning both read: the NERRE benchmark files,
their record formats, conversion to our schemas, user JSONL files and training splits."""

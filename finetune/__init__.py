"""LoRA fine-tuning for extraction, with the pipeline's own prompt format."""

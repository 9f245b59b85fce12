"""Models: the registry of shipped decoders and their preparation (``registry``), loading for
inference with a device, a precision and an adapter (``loading``), and LoRA adapters with
their cards (``adapters``). The names below are the stage's interface."""

from extraction.models.adapters import (ADAPTER_CARD, ADAPTER_HELP, AUTO_ADAPTER,
                                        adapter_card, adapter_choice, attach_adapter,
                                        card_schemas, default_adapter, inference_setting,
                                        is_multi_schema, resolve_adapter, shipped_adapters,
                                        update_card)
from extraction.models.loading import (BACKENDS, PRECISIONS, LoadedModel, choose_device,
                                       load, load_tokenizer, quantize_int8, resolve_backend,
                                       unload)
from extraction.models.registry import (DEFAULT_MODEL, MODELS, ModelSpec, get_spec, install,
                                        is_installed, is_prepared, prepare, prepared_dir,
                                        resolve_model_dir)

__all__ = ["ADAPTER_CARD", "ADAPTER_HELP", "AUTO_ADAPTER", "BACKENDS", "DEFAULT_MODEL", "MODELS",
           "PRECISIONS", "LoadedModel", "ModelSpec", "adapter_card", "adapter_choice",
           "attach_adapter", "card_schemas", "choose_device", "default_adapter", "get_spec",
           "inference_setting", "install", "is_installed", "is_multi_schema", "is_prepared",
           "load", "load_tokenizer", "prepare", "prepared_dir", "quantize_int8",
           "resolve_adapter", "resolve_backend", "resolve_model_dir", "shipped_adapters",
           "unload", "update_card"]

"""Weight-only quantization on the transformers side: is there a torch CPU kernel that keeps
accuracy and beats float32? (The llama.cpp backend's Q8_0 / Q4_K_M are measured end to end
by ``matextract eval --set precision=float32,int8,int4``.)

    .venv/bin/python bench/bench_weight_only.py [--model smollm2-135m] [--rows 32 --tokens 96]

For each scheme: one forward of a (rows x tokens) batch through the real model with its
shipped adapter merged (median of 5), the logits' relative error against float32, and the
bytes of the linear layers' weights. torchao is optional (``pip install torchao``): without
it, or where its kernel does not run on this CPU, the row says why.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _torch_ao_dynamic(model: Any) -> Any:
    from extraction.models.loading import quantize_int8

    return quantize_int8(model)


def _torchao(config_name: str, **kwargs: Any) -> Callable[[Any], Any]:
    def apply(model: Any) -> Any:
        import torchao.quantization as tq

        tq.quantize_(model, getattr(tq, config_name)(**kwargs))
        return model
    return apply


SCHEMES: dict[str, Callable[[Any], Any]] = {
    "float32": lambda model: model,
    "int8 dynamic (torch.ao, deprecated)": _torch_ao_dynamic,
    "int8 weight-only (torchao)": _torchao("Int8WeightOnlyConfig"),
    "int4 weight-only (torchao, group 32)": _torchao("Int4WeightOnlyConfig", group_size=32),
}


def _tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes actually stored: a quantized tensor subclass counts its inner tensors."""
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def _weight_bytes(model: Any) -> int:
    """Bytes of the weights (torch.ao's packed int8 layers keep theirs out of parameters)."""
    return sum(_tensor_bytes(t) for t in model.state_dict().values()
               if isinstance(t, torch.Tensor))


def main() -> None:
    from extraction import models

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", default="auto")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    adapter = models.default_adapter(args.model, "doping") if args.adapter == "auto" \
        else args.adapter
    base = models.load(args.model, device="cpu", precision="float32", adapter=adapter,
                       backend="transformers").model
    base = base.merge_and_unload() if hasattr(base, "merge_and_unload") else base
    ids = torch.randint(0, base.config.vocab_size, (args.rows, args.tokens),
                        generator=torch.Generator().manual_seed(0))
    reference = None
    print(f"{args.model} + {adapter}: forward of {args.rows} x {args.tokens} tokens, "
          f"{torch.get_num_threads()} threads")
    print("| scheme | ms per forward | logits rel. error | weight MB |\n|---|---|---|---|")
    for name, apply in SCHEMES.items():
        try:
            model = apply(copy.deepcopy(base)).eval()
            with torch.inference_mode():
                logits = model(input_ids=ids).logits
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    model(input_ids=ids)
                    times.append(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - a scheme that cannot run here is a result
            print(f"| {name} | does not run: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:120]} | | |")
            continue
        if reference is None:
            reference = logits
        error = float((logits - reference).norm() / reference.norm())
        print(f"| {name} | {statistics.median(times) * 1000:.0f} | {error:.4f} | "
              f"{_weight_bytes(model) / 1e6:.0f} |")


if __name__ == "__main__":
    main()

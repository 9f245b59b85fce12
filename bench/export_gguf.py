"""Write a GGUF of a model with its LoRA adapter merged in, for llama.cpp's row in the bench.

    python bench/export_gguf.py --model smollm2-135m --adapter auto --outtype q8_0 \
        --convert-script path/to/llama.cpp/convert_hf_to_gguf.py --out doping-smollm2.q8_0.gguf

llama.cpp's converter ships with the llama.cpp sources; ``scripts/setup.sh`` installs it from
llama-cpp-python's sdist (the llama.cpp backend uses it too), so --convert-script is optional.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.llamacpp_loop import export_gguf
from extraction.errors import MatextractError
from extraction.models.gguf import CONVERTED_TYPES
from extraction.models import adapter_choice
from extraction.config import ExtractorConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", default="auto",
                        help="adapter folder or shipped name, 'auto' (the shipped adapter for "
                             "the model and --schema) or 'none'")
    parser.add_argument("--schema", default="doping", help="schema that picks the auto adapter")
    parser.add_argument("--outtype", default="q8_0", choices=CONVERTED_TYPES)
    parser.add_argument("--convert-script", type=Path, default=None,
                        help="llama.cpp's convert_hf_to_gguf.py (default: the one "
                             "scripts/setup.sh installed)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        adapter = ExtractorConfig(model=args.model, schema_name=args.schema,
                                  adapter=adapter_choice(args.adapter)).adapter
        export_gguf(args.model, adapter, args.out, convert_script=args.convert_script,
                    outtype=args.outtype)
    except MatextractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

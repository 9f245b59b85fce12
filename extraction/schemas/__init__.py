"""The schema registry: built-in schemas by name, user schemas by file or import path."""

from __future__ import annotations

from pathlib import Path

from extraction.errors import SchemaError
from extraction.schemas.base import SchemaSpec

_BUILT_IN = {"doping": "extraction.schemas.doping", "general": "extraction.schemas.general",
             "mof": "extraction.schemas.mof"}


def builtin_names() -> list[str]:
    return list(_BUILT_IN)


def get_schema(name_or_path: str) -> SchemaSpec:
    """A built-in name, a path to a JSON Schema file, or ``module:Class``."""
    if name_or_path in _BUILT_IN:
        import importlib
        return importlib.import_module(_BUILT_IN[name_or_path]).SPEC
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise SchemaError(f"schema file {path} does not exist")
        from extraction.schemas.user import from_json_schema_file
        return from_json_schema_file(path)
    if ":" in name_or_path:
        from extraction.schemas.user import from_import_path
        return from_import_path(name_or_path)
    raise SchemaError(f"unknown schema {name_or_path!r}",
                      hint=f"built-in schemas: {', '.join(_BUILT_IN)}; or a JSON Schema file "
                           "path, or module:Class")


__all__ = ["SchemaSpec", "builtin_names", "get_schema"]

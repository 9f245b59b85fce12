"""One root error for everything matextract raises on purpose.

Every subclass carries a ``hint`` saying what the user can do about it; the CLI and the UI
print ``str(error)`` (message + hint) in one place instead of a traceback.
"""

from __future__ import annotations


class MatextractError(Exception):
    """Base class: a user-facing problem with a message and an actionable hint."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class DocumentError(MatextractError):
    """A document cannot be read or holds no usable text."""

    def __init__(self, path: object, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {problem}", hint=hint)
        self.path = str(path)
        self.problem = problem


class UnsupportedFormatError(DocumentError):
    hint = "supported: .txt .md .html .htm .pdf .json .jsonl"


class SchemaError(MatextractError):
    """An unknown schema name or an invalid user schema."""

    hint = "run 'matextract schemas' to list built-in schemas, or pass a JSON Schema file"


class ModelNotFoundError(MatextractError):
    """An unknown model name, or a known model whose package is not installed."""


class IndexStoreError(MatextractError):
    """A persisted index is missing, corrupt, or built with another embedding model."""


class GenerationError(MatextractError):
    """The model failed to produce output (budget exhausted, grammar dead end)."""


class ConfigError(MatextractError):
    """An invalid option value."""

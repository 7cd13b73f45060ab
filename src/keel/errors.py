"""One exception tree for everything keel reports to a person.

Every error says what is wrong, where, and how to fix it. The CLI prints
``str(error)`` as one line (``--debug`` adds the traceback) and exits with
``error.exit_code``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class KeelError(Exception):
    """Base of keel's errors: a message, and optionally the fix."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(KeelError):
    """The project file or a command-line option is invalid."""

    exit_code = 2


class DataError(KeelError):
    """A data file cannot be read or does not fit what was asked of it."""

    exit_code = 3


class SchemaError(DataError):
    """Input rows do not match the model's input schema.

    ``problems`` holds one dict per problem: ``row`` (or None for the whole
    input), ``column`` and ``problem``; servers return them as a 422 body.
    """

    def __init__(self, problems: Sequence[dict[str, object]], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__(_summarise(self.problems), hint=hint)


class TrainingError(KeelError):
    """Training could not produce a model."""

    exit_code = 4


class RegistryError(KeelError):
    """A model, version or alias is missing or the registry refused a change."""

    exit_code = 5


class ModelNotFoundError(RegistryError):
    """The named model or version does not exist."""


class ExportError(KeelError):
    """A model could not be exported, or its export failed a check."""

    exit_code = 6


class BundleError(KeelError):
    """A model bundle is missing, tampered with or truncated."""

    exit_code = 7


class ServeError(KeelError):
    """The server cannot start or cannot load its model."""

    exit_code = 8


class MonitorError(KeelError):
    """Monitoring has nothing to compare, or its inputs are unreadable."""

    exit_code = 9


def _summarise(problems: Sequence[dict[str, object]], limit: int = 3) -> str:
    """Render the first few problems as one line: 'row 2, column 'age': must be a number'."""
    if not problems:
        return "input does not match the schema"
    parts = [_one_problem(p) for p in problems[:limit]]
    more = len(problems) - limit
    tail = f" (and {more} more)" if more > 0 else ""
    return "; ".join(parts) + tail


def _one_problem(problem: dict[str, object]) -> str:
    where = []
    if problem.get("row") is not None:
        where.append(f"row {problem['row']}")
    if problem.get("column") is not None:
        where.append(f"column '{problem['column']}'")
    prefix = ", ".join(where)
    return f"{prefix}: {problem['problem']}" if prefix else str(problem["problem"])


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``name`` (for 'did you mean' hints), or None."""
    import difflib

    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None

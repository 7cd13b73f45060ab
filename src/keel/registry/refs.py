"""Model references as people type them: ``NAME``, ``NAME@3``, ``@3``, ``3``, ``NAME@champion``."""

from __future__ import annotations

from keel.config import validate_name
from keel.errors import ConfigError


def parse_ref(ref: str | None, default_name: str) -> tuple[str, str | None]:
    """(model name, version number or alias or None for 'newest')."""
    if ref is None or not ref.strip():
        return default_name, None
    text = ref.strip()
    name, _, version = text.rpartition("@") if "@" in text else ("", "", text)
    if not name and not _looks_like_version(version):
        name, version = version, ""
    name = validate_name(name or default_name)
    version = version.lstrip("vV") if _looks_like_version(version) else version
    if version and not (version.isdigit() or version.isidentifier()):
        raise ConfigError(
            f"'{ref}' is not a model reference.", hint="Use NAME, NAME@VERSION or NAME@ALIAS, e.g. adult@3."
        )
    return name, version or None


def _looks_like_version(text: str) -> bool:
    return text.lstrip("vV").isdigit()

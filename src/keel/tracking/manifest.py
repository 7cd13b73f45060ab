"""The reproducibility manifest recorded with every run.

Seed and data hash come from the caller; this module adds what the machine
and the code were: keel version, git commit of the project, Python, OS, CPU,
and the versions of the packages that shape the model.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from keel._version import __version__

MODEL_PACKAGES = ("numpy", "pandas", "scikit-learn", "lightgbm", "onnx", "onnxruntime", "skl2onnx", "mlflow")


def environment() -> dict[str, str]:
    """Facts about the code and machine, as flat string tags."""
    tags = {
        "keel.version": __version__,
        "python.version": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": platform.processor() or platform.machine(),
        "cpu.count": str(os.cpu_count() or 0),
    }
    for name in MODEL_PACKAGES:
        tags[f"package.{name}"] = _version(name)
    return tags


def git_commit(path: Path) -> str | None:
    """The project's git commit (with '-dirty' for uncommitted changes), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def frozen_requirements() -> str:
    """Every installed distribution as ``name==version`` lines (like pip freeze)."""
    lines = {f"{name}=={version}" for name, version in map(_name_and_version, metadata.distributions()) if name}
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def _name_and_version(distribution: metadata.Distribution) -> tuple[str, str]:
    """Name and Version from the metadata's header lines only: ``Distribution.metadata`` parses
    every long description too (0.39 s for 197 distributions here, against 0.02 s)."""
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line:  # the headers end at the first empty line
            break
        key, _, value = line.partition(":")
        if key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
    return fields.get("Name", ""), fields.get("Version", "")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"

"""The golden set: rows frozen at a model's first promotion, on which every later challenger
and the champion are scored.

Content-addressed: the Parquet file is named by its SHA-256, kept in the store
(``golden/<model>/<sha256>.parquet``) and as an artifact of the first champion's run; the
registered model's tags name the digest and that run. Loading verifies the digest, and
falls back to the run's copy when the store's is gone.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import RegistryError
from keel.registry.mlflow_registry import MlflowRegistry, ModelVersion
from keel.store import Store, atomic_write_bytes

DIGEST_TAG = "keel.golden_sha256"
RUN_TAG = "keel.golden_run"
TARGET = "keel_target"
ARTIFACT_DIR = "golden"


def freeze(
    registry: MlflowRegistry, store: Store, version: ModelVersion, holdout: Any, classes: list[str] | None
) -> str:
    """Freeze ``holdout`` (a pyarrow table of inputs and the encoded target) as the golden set of
    ``version``'s model; the target is stored as the class label, so models whose class order
    differs still score it alike."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(with_labels(holdout, classes), buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = atomic_write_bytes(store.golden_file(version.name, digest), data)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / path.name).write_bytes(data)
        registry.log_artifacts(version.run_id, Path(tmp), ARTIFACT_DIR)
    registry.set_model_tags(version.name, {DIGEST_TAG: digest, RUN_TAG: version.run_id})
    return digest


def with_labels(holdout: Any, classes: list[str] | None) -> Any:
    """A run's hold-out table (pyarrow) with its target as class labels instead of the run's
    class indices (regression: unchanged)."""
    import pyarrow as pa

    if classes is None:
        return holdout
    labels = np.asarray(classes, dtype=object)[holdout.column(TARGET).to_numpy().astype(np.int64)]
    return holdout.set_column(holdout.schema.get_field_index(TARGET), TARGET, pa.array(labels.astype(str)))


def load(registry: MlflowRegistry, store: Store, name: str) -> tuple[Any, str] | None:
    """The golden set of ``name`` (a pandas frame) and its digest; None before the first freeze."""
    import pandas as pd

    tags = registry.model_tags(name)
    digest = tags.get(DIGEST_TAG)
    if not digest:
        return None
    path = store.golden_file(name, digest)
    if not path.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            fetched = registry.download(tags.get(RUN_TAG, ""), f"{ARTIFACT_DIR}/{digest}.parquet", Path(tmp))
            atomic_write_bytes(path, fetched.read_bytes())
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise RegistryError(
            f"the golden set of '{name}' at {path} does not match its recorded SHA-256 {digest[:12]}: "
            "it was changed or truncated.",
            hint=f"Delete the file: keel then restores it from the run {tags.get(RUN_TAG, '?')[:8]}'s artifact.",
        )
    return pd.read_parquet(io.BytesIO(data)), digest

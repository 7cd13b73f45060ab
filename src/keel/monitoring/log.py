"""Reading the prediction log written by the server (see keel.serving.predlog)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import MonitorError
from keel.schema import LOG_ROUTE, LOG_VERSION, NUMERIC


def read_log(directory: Path, version: str | None = None, shadow: bool = False) -> Any:
    """Every complete segment as one pyarrow Table, optionally of one model version.

    Shadow rows (scored off the response path, see keel.serving.app) are left out unless
    ``shadow``: they repeat inputs already logged with the answer.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    if not files:
        return None
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    except (OSError, pa.ArrowInvalid) as exc:
        raise MonitorError(f"the prediction log in {directory} is unreadable: {exc}") from None
    if version is not None:
        table = table.filter(pc.equal(table[LOG_VERSION], version))
    if not shadow and LOG_ROUTE in table.column_names:
        table = table.filter(pc.fill_null(pc.not_equal(table[LOG_ROUTE], "shadow"), True))
    return table


def column_values(table: Any, name: str, kind: str) -> np.ndarray:
    """A logged column as canonical values (float with NaN, or str with '' for missing)."""
    column = table.column(name)
    if kind == NUMERIC:
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    return column.fill_null("").to_numpy(zero_copy_only=False).astype(object)

"""Read a data file into a DataFrame, or say clearly why it cannot be read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from keel.errors import DataError

READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv"}


def load_table(path: Path | str) -> Any:
    """Load a CSV, TSV or Parquet file as a pandas DataFrame (at least one row)."""
    file = Path(path)
    fmt = _check_file(file)
    frame = _read(file, fmt)
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(
            f"{file} has a header but no rows." if frame.shape[1] else f"{file} has no columns.",
            hint="Point keel at a file with data.",
        )
    return frame


def _check_file(file: Path) -> str:
    if not file.exists():
        raise DataError(
            f"data file {file} does not exist.",
            hint="Check the path; paths in keel.yaml are relative to the project file.",
        )
    if file.is_dir():
        raise DataError(f"{file} is a directory, not a data file.", hint="Name one .csv or .parquet file.")
    fmt = READERS.get(file.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{file}: unsupported file type '{file.suffix}'.", hint=f"Use one of: {', '.join(sorted(READERS))}."
        )
    if file.stat().st_size == 0:
        raise DataError(f"{file} is empty (0 bytes).", hint="Point keel at a file with a header and rows.")
    return fmt


def _read(file: Path, fmt: str) -> Any:
    import pandas as pd

    try:
        if fmt == "parquet":  # a pandas index stored in the file is not data: drop it
            return pd.read_parquet(file).reset_index(drop=True)
        _check_header(file, fmt)
        return pd.read_csv(file, sep="\t" if fmt == "tsv" else ",", low_memory=False)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{file} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}).",
            hint="Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`.",
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{file} has no header and no rows.", hint="Point keel at a file with data.") from None
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot read {file} as {fmt}: {first}",
            hint="Check that the file is complete and of the type its name says.",
        ) from None


def _check_header(file: Path, fmt: str) -> None:
    """A CSV header that names a column twice is refused (pandas would rename the second
    ``age.1`` and train on both), as Parquet's reader refuses one."""
    import csv
    from collections import Counter

    try:
        with file.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle, delimiter="\t" if fmt == "tsv" else ","), [])
    except (UnicodeDecodeError, csv.Error):
        return  # the reader itself says what is wrong with the file
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        where = "; ".join(
            f"'{name}' in columns {', '.join(str(i + 1) for i, h in enumerate(header) if h == name)}"
            for name in repeated
        )
        raise DataError(
            f"{file}: the header names a column more than once ({where}).",
            hint="Rename or drop the repeated columns: keel will not guess which one is meant.",
        )


def load_frame(path: Path | str) -> Any:
    """A polars DataFrame of a data file (for triage); same checks and errors as ``load_table``."""
    import polars as pl

    file = Path(path)
    fmt = _check_file(file)
    if fmt != "parquet":
        return pl.from_pandas(load_table(file))
    try:
        frame = pl.read_parquet(file)
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot read {file} as parquet: {first}",
            hint="Check that the file is complete and of the type its name says.",
        ) from None
    index = [c for c in frame.columns if re.fullmatch(r"__index_level_\d+__", c)]
    frame = frame.drop(index)  # pandas' stored index: not data (pandas reads it back as the index)
    if frame.width == 0 or frame.height == 0:
        raise DataError(
            f"{file} has a header but no rows." if frame.width else f"{file} has no columns.",
            hint="Point keel at a file with data.",
        )
    return frame


def iter_table(path: Path | str, rows: int = 65_536) -> tuple[Any, int | None]:
    """(iterator of DataFrame chunks of at most ``rows`` rows, total rows if known).

    Parquet is read by row batches and CSV by chunks, so memory stays bounded.
    """
    import pandas as pd

    file = Path(path)
    fmt = _check_file(file)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            handle = pq.ParquetFile(file)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {file} as parquet: {exc}", hint="Check that the file is complete.") from None
        batches = (batch.to_pandas() for batch in handle.iter_batches(batch_size=rows))
        return batches, handle.metadata.num_rows
    _check_header(file, fmt)
    reader = pd.read_csv(file, sep="\t" if fmt == "tsv" else ",", chunksize=rows, low_memory=False)
    return _guard_csv(reader, file), None


def _guard_csv(reader: Any, file: Path) -> Any:
    import pandas as pd

    try:
        yield from reader
    except UnicodeDecodeError as exc:
        raise DataError(f"{file} is not UTF-8 text (offset {exc.start}).", hint="Re-save it as UTF-8.") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot read {file} as CSV: {str(exc).splitlines()[0]}") from None

from __future__ import annotations

from pathlib import Path

import numpy as np

from keel.monitoring.log import column_values, read_log
from keel.schema import CATEGORICAL, LOG_VERSION, NUMERIC
from keel.serving.predlog import PredictionLog


def batch(version: str, n: int, start: int = 0) -> dict[str, np.ndarray]:
    return {
        LOG_VERSION: np.full(n, version, dtype=object),
        "x": np.arange(start, start + n, dtype=np.float32),
        "c": np.array(["a", ""] * (n // 2), dtype=object),
    }


def test_close_flushes_everything_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log", flush_seconds=60).start()
    for i in range(10):
        log.append(batch("1", 4, start=4 * i))
    log.close()
    files = list((tmp_path / "log").iterdir())
    assert len(files) == 1 and files[0].suffix == ".parquet"
    table = read_log(tmp_path / "log")
    assert table.num_rows == 40
    assert column_values(table, "x", NUMERIC).tolist() == list(range(40))
    assert column_values(table, "c", CATEGORICAL)[:2].tolist() == ["a", ""]


def test_background_thread_flushes_on_its_interval(tmp_path: Path) -> None:
    import time

    log = PredictionLog(tmp_path / "log", flush_seconds=0.05).start()
    log.append(batch("1", 2))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not list((tmp_path / "log").glob("*.parquet")):
        time.sleep(0.02)
    assert read_log(tmp_path / "log").num_rows == 2
    log.close()


def test_reading_one_version(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log").start()
    log.append(batch("1", 4))
    log.append(batch("2", 6))
    log.close()
    assert read_log(tmp_path / "log", version="2").num_rows == 6
    assert read_log(tmp_path / "empty") is None

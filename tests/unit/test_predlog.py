from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def test_write_errors_keep_the_newest_rows_within_the_bound_and_the_log_resumes(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_text("a file where the log's directory should be")  # every write fails
    log = PredictionLog(target, flush_seconds=60, max_pending_rows=500)
    errors: list[int] = []
    dropped: list[int] = []
    log.on_error = lambda: errors.append(1)
    log.on_drop = dropped.append
    for i in range(10):
        log.append(batch("1", 100, start=100 * i))
        with pytest.raises(OSError):
            log.flush()
    status = log.status()
    assert not status["ok"] and status["errors"] == 10 == len(errors) and "NotADirectory" in str(status["last_error"])
    assert status["pending_rows"] == 500 and log.dropped_rows == 500 == sum(dropped)  # the oldest went first
    target.unlink()
    target.mkdir()  # the space is back
    log.flush()
    assert log.status()["ok"]
    assert column_values(read_log(target), "x", NUMERIC).tolist() == list(range(500, 1000))


def test_a_full_disk_degrades_the_log_and_it_recovers_by_itself(tmp_path: Path) -> None:
    """A real ENOSPC: a 1 MB tmpfs (skipped where mounting is not allowed)."""
    import subprocess
    import time

    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        log = PredictionLog(mount / "log", flush_seconds=0.05, max_pending_rows=50_000).start()
        for i in range(40):  # ~3 MB of rows: the disk fills
            log.append(batch("1", 10_000, start=10_000 * i) | {"pad": np.random.default_rng(i).random(10_000)})
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while log.status()["ok"] and time.monotonic() < deadline:
            time.sleep(0.05)
        status = log.status()
        assert not status["ok"] and "No space left" in str(status["last_error"]), status
        assert int(status["pending_rows"]) <= 50_000 and log.dropped_rows > 0  # bounded memory
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)  # space returns
        deadline = time.monotonic() + 40  # retries back off to at most 30 s
        while not log.status()["ok"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.status()["ok"] and log.status()["pending_rows"] == 0
        log.close()
        assert read_log(mount / "log").num_rows + log.dropped_rows == 400_000
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)

"""Shared fixtures: a seeded random generator, the example project, the real CLI and server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "adult"
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# tests/ray_engine starts Ray, which listens on every interface: it is collected only inside the
# private network namespace that tests/integration/test_ray_engine.py runs it in.
RAY_NETNS_ENV = "KEEL_RAY_NETNS"
collect_ignore = [] if os.environ.get(RAY_NETNS_ENV) == "1" else ["ray_engine"]


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No telemetry, no stray tracking server: every test uses its own SQLite store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for key, value in (
        ("MLFLOW_DISABLE_TELEMETRY", "true"),
        ("DO_NOT_TRACK", "true"),
        ("MLFLOW_LOGGING_LEVEL", "WARNING"),
        ("OMP_NUM_THREADS", "1"),
    ):
        monkeypatch.setenv(key, value)


def cli_environment() -> dict[str, str]:
    """The environment of a CLI or server subprocess: quiet, and on its own project's SQLite
    store. MLFLOW_TRACKING_URI is dropped even when set: in-process tests that call MLflow
    leave it in os.environ, and module-scoped fixtures run before the per-test clean-up."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return env | {
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


TEST_BUDGET_SECONDS = 4


def copy_example(target: Path, budget: float = TEST_BUDGET_SECONDS) -> Path:
    """The adult example project (keel.yaml + sample data) in a fresh directory, with a short budget."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "adult_sample.parquet", target / "adult_sample.parquet")
    config = (EXAMPLE / "keel.yaml").read_text()
    (target / "keel.yaml").write_text(config.replace("budget_seconds: 30", f"budget_seconds: {budget:g}"))
    return target


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "project")


def keel(*args: str, cwd: Path, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python -m keel``) in ``cwd``."""
    env = cli_environment()
    result = subprocess.run(
        [sys.executable, "-m", "keel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real ``keel serve`` process on a free loopback port, started with ``-X importtime``
    so the test can read which modules the serving process loaded."""

    def __init__(self, cwd: Path, log: Path, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = cli_environment()
        with log.open("w") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-X", "importtime", "-m", "keel", "serve", "--port", str(self.port), *args],
                cwd=cwd,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("server did not become healthy in time")

    def stop(self) -> int:
        """Graceful shutdown (SIGINT, as Ctrl-C); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def imported_modules(self) -> set[str]:
        """Top-level packages the server process imported (from -X importtime)."""
        names = set()
        for line in self.log.read_text().splitlines():
            if line.startswith("import time:") and "|" in line:
                module = line.rsplit("|", 1)[1].strip()
                names.add(module.split(".")[0])
        return names


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[object]:
    servers: list[Server] = []

    def start(cwd: Path, *args: str) -> Server:
        server = Server(cwd, tmp_path / f"server-{len(servers)}.log", args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


SMS = SHARED_DATASETS / "sms_spam.parquet"


@pytest.fixture
def text_extra() -> None:
    """For tests/text_extra: skipped where the text extra is not installed, a failure in CI
    (which installs it, as `make test` does); skipped without the sms_spam data set."""
    from keel.textmodels.models import text_extra_installed

    if not text_extra_installed():
        if os.environ.get("CI"):
            pytest.fail("CI must run the text extra's tests, but it is not installed: pip install -e '.[text]'")
        pytest.skip("the text extra is not installed: pip install -e '.[text]'")
    if not SMS.is_file():
        pytest.skip(f"{SMS} is not here (see ../shared/datasets/README.md)")


@pytest.fixture(scope="session")
def sms_sample() -> object:
    """400 sms_spam rows (13% spam), the same every run."""
    import pandas as pd

    if not SMS.is_file():
        pytest.skip(f"{SMS} is not here (see ../shared/datasets/README.md)")
    return pd.read_parquet(SMS).sample(400, random_state=7).reset_index(drop=True)


@pytest.fixture
def sms_file(tmp_path: Path, sms_sample: object) -> Path:
    file = tmp_path / "sms.parquet"
    sms_sample.to_parquet(file)  # type: ignore[attr-defined]
    return file

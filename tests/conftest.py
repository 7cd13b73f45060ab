"""Shared fixtures: a seeded random generator, the example project, the real CLI and server."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with slow tests first, otherwise in the order collected. scripts/check hands
    whole modules to two pytest-xdist workers in this order (``--dist loadscope
    --no-loadscope-reorder``): the long ones start early and the short ones fill in the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def need_shared(*names: str) -> None:
    """Skip when ../shared/datasets lacks a file the test reads; in CI (CI set) that is a
    failure, so a missing data set cannot silently turn a test suite green."""
    missing = [name for name in names if not (SHARED_DATASETS / name).is_file()]
    if not missing:
        return
    why = f"{', '.join(missing)} not in {SHARED_DATASETS} (see its README.md)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but {why}")
    pytest.skip(why)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("shared_data"):
        need_shared(*marker.args)


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


# The environment before any test changed it: the warm CLI interpreter starts with this one.
BASE_ENVIRONMENT = dict(os.environ)


def cli_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI or server subprocess: quiet, and on its own project's SQLite
    store. MLFLOW_TRACKING_URI is dropped even when set: in-process tests that call MLflow
    leave it in os.environ, and module-scoped fixtures run before the per-test clean-up."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != "MLFLOW_TRACKING_URI"}
    return env | {
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


TEST_BUDGET_SECONDS = 15  # counts from process start: imports, triage and model logging take 8 s quiet, more beside
# another test (a 12 s budget left the CI run time for the baseline alone), and
# promotion refuses a model no better than the baseline (which is all an 8 s budget left time for)
# One thread per fit (train.threads): scripts/check runs two pytest-xdist workers on two cores,
# and two workers fitting with two OpenMP threads each made the torch tests three times slower.
TEST_THREADS = 1


def copy_example(target: Path, budget: float = TEST_BUDGET_SECONDS) -> Path:
    """The adult example project (keel.yaml + sample data) in a fresh directory, with a short
    budget and TEST_THREADS threads per fit."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "adult_sample.parquet", target / "adult_sample.parquet")
    config = (EXAMPLE / "keel.yaml").read_text()
    train = f"budget_seconds: {budget:g}\n  threads: {TEST_THREADS}"
    (target / "keel.yaml").write_text(config.replace("budget_seconds: 30", train))
    return target


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "project")


def keel(
    *args: str, cwd: Path, check: bool = False, timeout: float = 300, fresh: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python -m keel ARGS``) in ``cwd``, as a process of its own.

    The process is forked from a warm interpreter that has imported keel's dependencies
    (tests/cli_zygote.py) unless ``fresh`` or ``KEEL_TEST_FRESH_CLI=1``: then it is a new
    interpreter, imports and all, as a user's shell starts it.
    """
    env = cli_environment()
    if fresh or os.environ.get("KEEL_TEST_FRESH_CLI") == "1":
        result = subprocess.run(
            [sys.executable, "-m", "keel", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    else:
        result = _zygote().run(list(args), cwd, env, timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class Zygote:
    """tests/cli_zygote.py, started once per test process (each pytest-xdist worker has its own)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_zygote.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=cli_environment(BASE_ENVIRONMENT),
        )
        self._pending = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        with tempfile.TemporaryDirectory(prefix="keel-cli-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"args": args, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            pid = self._reply(timeout=120)["pid"]  # the first call waits for the imports
            try:
                status = self._reply(timeout)["status"]
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._reply(timeout=30)
                raise subprocess.TimeoutExpired(["keel", *args], timeout, out.read_text(), err.read_text()) from None
            return subprocess.CompletedProcess(["keel", *args], status, out.read_text(), err.read_text())

    def _reply(self, timeout: float) -> dict[str, int]:
        """The zygote's next line; read from the descriptor itself, so select sees every byte."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise subprocess.TimeoutExpired("keel", timeout)
            chunk = os.read(self.process.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"tests/cli_zygote.py exited {self.process.wait()} (its stderr is above)")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


_ZYGOTES: list[Zygote] = []


def _zygote() -> Zygote:
    if not _ZYGOTES or not _ZYGOTES[-1].alive():
        _ZYGOTES.append(Zygote())
    return _ZYGOTES[-1]


def pytest_sessionfinish() -> None:
    for zygote in _ZYGOTES:
        zygote.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real ``keel serve`` process on a free loopback port, started with ``-X importtime``
    so the test can read which modules the serving process loaded."""

    def __init__(self, cwd: Path, log: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = cli_environment() | (env or {})
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
    need_shared(SMS.name)


@pytest.fixture(scope="session")
def sms_sample() -> object:
    """400 sms_spam rows (13% spam), the same every run."""
    import pandas as pd

    need_shared(SMS.name)
    return pd.read_parquet(SMS).sample(400, random_state=7).reset_index(drop=True)


@pytest.fixture
def sms_file(tmp_path: Path, sms_sample: object) -> Path:
    file = tmp_path / "sms.parquet"
    sms_sample.to_parquet(file)  # type: ignore[attr-defined]
    return file

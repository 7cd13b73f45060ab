"""The Ray engine's tests (tests/ray_engine), run in a private network namespace.

Ray listens on every interface of the machine, not only loopback (PITFALLS.md), so the
tests that start it run inside ``unshare -n`` with only the loopback interface up (this
needs root, as CI has). They are skipped only when the ``ray`` extra is not installed; CI
installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import RAY_NETNS_ENV, ROOT, cli_environment

pytestmark = pytest.mark.slow


def private_network_available() -> str:
    """Empty when ``unshare -n`` works here, else why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"unshare -n failed: {probe.stderr.strip()} (it needs root)"


def test_the_ray_engine_in_a_private_network_namespace() -> None:
    pytest.importorskip("ray", reason='the ray extra is not installed: pip install -e ".[ray]"')
    why = private_network_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Ray tests, but {why}")
        pytest.skip(f"the Ray tests need a private network namespace: {why}")
    inner = f"{sys.executable} -m pytest {ROOT / 'tests' / 'ray_engine'} -q -p no:cacheprovider --timeout=600"
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        env=cli_environment() | {RAY_NETNS_ENV: "1", "RAY_USAGE_STATS_ENABLED": "0"},
        stdin=subprocess.DEVNULL,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, f"tests/ray_engine failed:\n{result.stdout[-8000:]}\n{result.stderr[-3000:]}"
    assert " passed" in result.stdout and "skipped" not in result.stdout

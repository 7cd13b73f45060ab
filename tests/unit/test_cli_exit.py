"""How the CLI process ends: the interpreter's final garbage collections are skipped
(gc.freeze at exit) when keel is the process, and left alone when Python code calls main()."""

from __future__ import annotations

import subprocess
import sys

import pytest

# registered before main() registers its own handler, so it runs after it (atexit is LIFO)
PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("frozen" if gc.get_freeze_count() else "not frozen"))
from keel.cli.main import main
sys.argv = ["keel", "--version"]
sys.exit(main({argv}))
"""


@pytest.mark.parametrize(("argv", "expected"), [("", "frozen"), ("['--version']", "not frozen")])
def test_only_the_process_entry_point_freezes_at_exit(argv: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines()[-1] == expected, result.stdout + result.stderr
    assert result.stdout.startswith("keel ")  # the command itself ran

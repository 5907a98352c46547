"""A hub killed with SIGKILL leaves no engine process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from stemhub.testing import patience, write_test_tone

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_a_killed_hub_takes_its_local_engine_processes_with_it(tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "song.wav", seconds=120.0)
    hub = subprocess.Popen(
        [sys.executable, "-m", "tests.core._orphan_app", str(tmp_path / "data"), str(song)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    try:
        assert hub.stdout is not None
        assert hub.stdout.readline().strip() == "separating"
        tree = psutil.Process(hub.pid).children(recursive=True)
        names = sorted(" ".join(p.cmdline())[:60] for p in tree)
        # the forkserver and at least one pool worker run besides the hub
        assert len(tree) >= 2, names
    finally:
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=30)
        if hub.stdout is not None:
            hub.stdout.close()

    def all_gone() -> bool:
        return not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    # the watchdogs poll twice a second; a loaded machine gets a generous wait
    assert _wait_for(all_gone, timeout=patience(30)), [p.cmdline() for p in tree if p.is_running()]

"""A real ``stemhub worker`` process for the tests, with the fake backend registered.

Run as ``python -m tests.scale._worker_main``; settings come from ``STEMHUB_*`` variables
like any worker's. ``TEST_FAKE_DELAY_S`` sets the fake separation's duration,
``TEST_WORKER_QUEUES`` and ``TEST_WORKER_NAME`` the queues and the name,
``TEST_BROKER_HEARTBEAT_S`` the AMQP heartbeat, ``TEST_FAKE_NAMES`` the backend names
the fake answers to (so routing tests can run "demucs" and "stemsplit" tasks).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from stemhub.config import Settings
from stemhub.plugin.marker import hookimpl
from stemhub.testing import FakeBackend, FakeBackendControls


class FakeUnderNames:
    """Registers the fake backend under several names, after the builtins (trylast wins)."""

    def __init__(self, names: list[str], controls: FakeBackendControls) -> None:
        self.names = names
        self.controls = controls

    @hookimpl(trylast=True)
    def stemhub_register_backends(self, register: Callable[..., None]) -> None:
        for name in self.names:
            register(name, lambda _hub: FakeBackend(self.controls))


def main() -> int:
    from stemhub.cluster.worker import run_worker

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    controls = FakeBackendControls(
        delay_s=float(os.environ.get("TEST_FAKE_DELAY_S", "0.2")),
        progress_steps=int(os.environ.get("TEST_FAKE_STEPS", "10")),
    )
    names = os.environ.get("TEST_FAKE_NAMES", "fake").split(",")
    return run_worker(
        Settings(_env_file=None),
        queues=os.environ.get("TEST_WORKER_QUEUES", "cpu").split(","),
        concurrency=int(os.environ.get("TEST_WORKER_CONCURRENCY", "1")),
        name=os.environ.get("TEST_WORKER_NAME"),
        heartbeat_s=float(os.environ.get("TEST_BROKER_HEARTBEAT_S", "30")),
        extra_plugins=[("test-fake-backends", FakeUnderNames(names, controls))],
    )


if __name__ == "__main__":
    sys.exit(main())

"""schemathesis against the live bridge: every operation of /openapi.json, bounded examples.

The hub runs in its own thread and event loop (schemathesis calls are synchronous),
on a real loopback server; every answer must be documented and match its schema, and
none may be a 5xx.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from stemhub.testing import write_test_tone
from tests.bridge.conftest import open_bridge

EXAMPLES = 15
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


class LiveBridge:
    """A bridge on loopback run by a background thread until :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ready = threading.Event()
        self.url = ""
        self.token = ""
        self.job_id = ""
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._error: BaseException | None = None

    def start(self) -> LiveBridge:
        self._thread.start()
        if not self.ready.wait(30):
            raise RuntimeError(f"the bridge did not start: {self._error!r}")
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self.ready.set()

    async def _serve(self) -> None:
        env = {"STEMHUB_N8N_BRIDGE_RATE_LIMIT": "", "STEMHUB_N8N_BRIDGE_MAX_WAIT_S": "0.5"}
        async with open_bridge(self.data_dir, env=env) as bridge:
            self.url, self.token = bridge.url, bridge.token
            song = write_test_tone(self.data_dir / "seed.wav")
            seeded = await bridge.client.post(
                "/v1/split",
                files={"file": ("seed.wav", song.read_bytes(), "audio/wav")},
                data={"wait": "5", "output_format": "WAV"},
                headers=bridge.auth,
            )
            self.job_id = seeded.json()["id"]
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def live_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBridge]:
    bridge = LiveBridge(tmp_path_factory.mktemp("fuzz")).start()
    try:
        yield bridge
    finally:
        bridge.stop()


def _fuzz(operation: Any, bridge: LiveBridge, statuses: list[int]) -> None:
    headers = {"Authorization": f"Bearer {bridge.token}"}

    @given(operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=20)
        statuses.append(response.status_code)

    run()


def test_every_operation_answers_as_documented(live_bridge: LiveBridge) -> None:
    schema = schemathesis.openapi.from_url(live_bridge.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 18
    failures: list[str] = []
    statuses: list[int] = []
    for operation in operations:
        try:
            _fuzz(operation, live_bridge, statuses)
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(statuses) >= 5 * len(operations)
    assert any(200 <= status < 300 for status in statuses)

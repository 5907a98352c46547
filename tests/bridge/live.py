"""A bridge on loopback in a thread of its own, for the synchronous schemathesis runs.

The hub runs in its own event loop; the test thread makes blocking HTTP calls to it.
It is seeded with one finished job, so the fuzzers reach more than 404s, and a loopback
server beside it takes webhooks (``receiver_url``) and serves a song (``song_url``).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from stemhub.testing import write_test_tone
from tests.bridge.conftest import open_bridge, run_receiver


class LiveBridge:
    """A bridge on loopback run by a background thread until :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ready = threading.Event()
        self.url = ""
        self.token = ""
        self.job_id = ""
        self.receiver_url = ""
        self.song_url = ""
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._error: BaseException | None = None

    def start(self) -> LiveBridge:
        self._thread.start()
        if not self.ready.wait(30) or self._error is not None:
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
        song = write_test_tone(self.data_dir / "seed.wav")
        async with (
            run_receiver(files={"song.wav": song}) as receiver,
            open_bridge(self.data_dir / "hub", env=env) as bridge,
        ):
            self.url, self.token = bridge.url, bridge.token
            self.receiver_url = receiver.url + "/hook/live"
            self.song_url = receiver.url + "/files/song.wav"
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

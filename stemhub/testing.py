"""pytest plugin for stemhub and its plugin authors (entry point ``pytest11``).

Fixtures (all prefixed ``stemhub_``):

- ``stemhub_settings``: :class:`~stemhub.config.Settings` on a temp data dir (SQLite
  store, output folder), no quotas, no public URL, fast progress publishing.
- ``stemhub_fake_backend``: the :class:`FakeBackend` controls (delay, failures,
  counters) shared by every instance the hub builds.
- ``stemhub_hub``: an opened :class:`~stemhub.hub.Hub` whose default backend is the fake.
- ``stemhub_register_plugin``: register a plugin object on that hub's plugin manager
  for one test (unregistered afterwards).
- ``stemhub_audio_file``: a short stereo WAV made on the spot.

A plugin's own tests need only ``pip install stemhub pytest pytest-asyncio`` and
``asyncio_mode = "auto"``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)
from stemhub.errors import StemhubError
from stemhub.models import BackendCapabilities, StemSet
from stemhub.plugin.marker import hookimpl

if TYPE_CHECKING:
    # the hub, its store and the settings machinery load on first use: this module is a
    # pytest plugin, imported by every pytest run of the project and of plugin authors
    from stemhub.config import Settings
    from stemhub.hub import Hub


@dataclass
class FakeBackendControls:
    """Knobs and counters for :class:`FakeBackend`; one object shared by its instances."""

    delay_s: float = 0.0
    progress_steps: int = 4
    resumable: bool = False
    concurrency: int | None = None
    """Separations at once (None: unbounded, like a remote service)."""
    fail_with: StemhubError | None = None
    fail_times: int = 0
    stem_sets: frozenset[StemSet] = frozenset(StemSet)
    max_bytes: int | None = None
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    bpm: float | None = 120.0
    key: str | None = "A minor"


class FakeBackend(Backend):
    """Completes after ``delay_s``, copying the input's bytes to every stem file.

    Good for testing pipelines, frontends and delivery; it separates nothing.
    """

    name = "fake"

    def __init__(self, controls: FakeBackendControls) -> None:
        self.controls = controls
        self.capabilities = BackendCapabilities(
            stem_sets=controls.stem_sets,
            max_bytes=controls.max_bytes,
            url_sources=True,
            youtube=True,
            analysis=True,
            resumable=controls.resumable,
            concurrency=controls.concurrency,
        )

    async def start(self, task: SeparationTask) -> str:
        controls = self.controls
        if controls.fail_with is not None and controls.fail_times > 0:
            controls.fail_times -= 1
            raise controls.fail_with
        remote_id = f"fake-{task.job_id}-{len(controls.started)}"
        controls.started.append(remote_id)
        return remote_id

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        steps = max(1, self.controls.progress_steps)
        for step in range(1, steps + 1):
            await asyncio.sleep(self.controls.delay_s / steps)
            await progress(100.0 * step / steps)
        stems: dict[str, StemFile] = {}
        task.out_dir.mkdir(parents=True, exist_ok=True)
        for stem in task.stems:
            target = task.out_dir / f"{stem}.{task.output_format.extension}"
            if task.input_path is not None:
                await asyncio.to_thread(shutil.copyfile, task.input_path, target)
            else:
                target.write_bytes(b"RIFF")
            stems[stem] = StemFile(stem=stem, path=target, size_bytes=target.stat().st_size)
        self.controls.completed.append(remote_id)
        return SeparationResult(stems=stems, bpm=self.controls.bpm, key=self.controls.key)

    async def cancel(self, remote_id: str) -> None:
        self.controls.cancelled.append(remote_id)


class FakeBackendPlugin:
    """A plugin object that registers :class:`FakeBackend` as ``fake``."""

    def __init__(self, controls: FakeBackendControls) -> None:
        self.controls = controls

    @hookimpl
    def stemhub_register_backends(self, register: Callable[..., None]) -> None:
        register("fake", lambda _hub: FakeBackend(self.controls))


PATIENCE = float(os.environ.get("STEMHUB_TEST_PATIENCE", "3"))
"""How many times longer than on an idle machine a test waits for a condition.

Tests wait on conditions, never assert how long something took; the waits still need a
bound so a broken feature fails instead of hanging. Loaded CI machines get this factor
(``STEMHUB_TEST_PATIENCE``), one number for the whole suite.
"""


def patience(seconds: float) -> float:
    """A wait bound of ``seconds`` on an idle machine, scaled for slow ones."""
    return seconds * PATIENCE


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, for a server a test starts later."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: temp data dir, no quotas, no public URL, no .env/toml reads."""
    from stemhub.config import QuotaSettings, Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "public_url": None,
        "quota": QuotaSettings(per_user=None, per_channel=None, per_guild=None, per_api_key=None),
        "progress_interval_s": 0.0,
        "signing_key": "stemhub-test-signing-key",
        "allow_private_networks": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def write_test_tone(path: Path, *, seconds: float = 1.0, sample_rate: int = 44100) -> Path:
    """A short stereo WAV (two tones and noise) for tests that need any real audio."""
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(0)
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    soundfile.write(path, np.stack([left, right], axis=1).astype(np.float32), sample_rate)
    return path


def open_test_hub(
    settings: Settings,
    controls: FakeBackendControls,
    *,
    block: tuple[str, ...] = (),
    **kwargs: Any,
) -> Hub:
    """A hub whose default backend is the fake; ``block`` keeps named builtins out."""
    from stemhub.hub import Hub
    from stemhub.plugin.manager import get_plugin_manager

    pm = get_plugin_manager(
        only=(), block=block, extra=[("stemhub-fake-backend", FakeBackendPlugin(controls))]
    )
    return Hub(settings, pm=pm, **kwargs)


@pytest.fixture(autouse=True)
def stemhub_no_hosted_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hosted StemSplit key exported in the shell never reaches a test: a hub choosing
    its backend (``auto``) would send the test's audio to the paid API. A test that wants
    the builtin backend sets the key itself (``monkeypatch.setenv``)."""
    from stemhub.backends.stemsplit.settings import KEY_NAMES

    for name in KEY_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stemhub_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "stemhub-data", default_backend="fake")


@pytest.fixture
def stemhub_fake_backend() -> FakeBackendControls:
    return FakeBackendControls()


@pytest.fixture
def stemhub_audio_file(tmp_path: Path) -> Path:
    return write_test_tone(tmp_path / "tone.wav")


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - plugin authors without pytest-asyncio get no hub
    pass
else:

    @pytest_asyncio.fixture
    async def stemhub_hub(
        stemhub_settings: Settings, stemhub_fake_backend: FakeBackendControls
    ) -> AsyncIterator[Hub]:
        hub = open_test_hub(stemhub_settings, stemhub_fake_backend)
        await hub.open()
        try:
            yield hub
        finally:
            await hub.close()

    @pytest.fixture
    def stemhub_register_plugin(stemhub_hub: Hub) -> Iterator[Callable[[object, str], None]]:
        registered: list[object] = []

        def register(plugin: object, name: str) -> None:
            stemhub_hub.pm.register(plugin, name=name)
            registered.append(plugin)

        yield register
        for plugin in registered:
            stemhub_hub.pm.unregister(plugin)


__all__ = [
    "PATIENCE",
    "FakeBackend",
    "FakeBackendControls",
    "FakeBackendPlugin",
    "free_port",
    "make_settings",
    "open_test_hub",
    "patience",
    "write_test_tone",
]

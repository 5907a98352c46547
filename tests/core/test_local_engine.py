"""The embedded engine and the ``local`` backend, from the outside.

Real audio files go in (the synthesized demo song, written and read by stemhub.media),
stem files come out; the backend runs in its real process pool behind a real hub.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from stemhub import media
from stemhub.backends.base import SeparationTask
from stemhub.backends.local.backend import LocalBackend
from stemhub.backends.local.engine import Engine, StemPlan
from stemhub.config import Settings
from stemhub.demo import demo_spec, demo_stems, mix, write_demo_song
from stemhub.errors import ErrorCode, StemhubError
from stemhub.hub import Hub
from stemhub.models import (
    JobRequest,
    JobStatus,
    OutputFormat,
    Quality,
    Source,
    SourceKind,
    StemSet,
)
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import make_settings, patience

SR = 44100


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain signal-to-distortion ratio in dB (no distortion filter)."""
    error = np.sum((reference.astype(np.float64) - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / (error + 1e-12)))


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(threads=2)


@pytest.fixture(scope="module")
def demo() -> dict[str, np.ndarray]:
    return demo_stems(seconds=8.0)


@pytest.fixture(scope="module")
def separated(engine: Engine, demo: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return engine.separate(mix(demo), SR)


def test_four_stems_sum_back_to_the_mix(
    demo: dict[str, np.ndarray], separated: dict[str, np.ndarray]
) -> None:
    mixed = mix(demo)
    assert set(separated) == {"vocals", "drums", "bass", "other"}
    for stem in separated.values():
        assert stem.shape == mixed.shape
        assert stem.dtype == np.float32
    total = sum(separated.values())
    assert np.max(np.abs(total - mixed)) < 1e-5


def test_the_engine_separates_the_demo_song(
    demo: dict[str, np.ndarray], separated: dict[str, np.ndarray]
) -> None:
    # the mixture itself is the estimate of a method that does nothing; every stem
    # must be far better than that (the figures of docs/engine.md come from the bench)
    mixed = mix(demo)
    for name in ("vocals", "drums", "bass", "other"):
        floor = sdr(demo[name], mixed)
        ours = sdr(demo[name], separated[name])
        assert ours > floor + 6.0, (name, ours, floor)
    assert sdr(demo["drums"], separated["drums"]) > 6.0
    assert sdr(demo["vocals"], separated["vocals"]) > 2.0


def test_vocals_and_instrumental_also_sum_to_the_mix(
    engine: Engine, demo: dict[str, np.ndarray]
) -> None:
    mixed = mix(demo)
    both = engine.separate(mixed, SR, ("vocals", "instrumental"))
    assert set(both) == {"vocals", "instrumental"}
    assert np.max(np.abs(both["vocals"] + both["instrumental"] - mixed)) < 1e-5
    accompaniment = demo["drums"] + demo["bass"] + demo["other"]
    assert sdr(accompaniment, both["instrumental"]) > sdr(accompaniment, mixed) + 4.0


def test_long_input_is_processed_in_chunks_without_seams(demo: dict[str, np.ndarray]) -> None:
    # 3 s chunks with 1 s of overlap: five chunks and four crossfades over 8 s
    small = Engine(threads=1, chunk_s=3.0, overlap_s=1.0)
    try:
        mixed = mix(demo)
        chunked = small.separate(mixed, SR)
        assert all(s.shape == mixed.shape for s in chunked.values())
        assert np.max(np.abs(sum(chunked.values()) - mixed)) < 1e-5
        assert sdr(demo["drums"], chunked["drums"]) > 6.0
    finally:
        small.close()


@pytest.mark.parametrize(
    ("length", "channels", "rate"), [(1, 2, SR), (1000, 2, SR), (SR // 2 + 17, 1, 22050)]
)
def test_odd_lengths_mono_and_other_rates(
    engine: Engine, length: int, channels: int, rate: int
) -> None:
    audio = np.random.default_rng(0).standard_normal((channels, length)).astype(np.float32) * 0.1
    out = engine.separate(audio, rate)
    assert all(stem.shape == (channels, length) for stem in out.values())
    assert np.max(np.abs(sum(out.values()) - audio)) < 1e-5


def test_stem_plans() -> None:
    assert StemPlan.for_stems(("vocals",)).outputs == ("vocals",)
    assert StemPlan.for_stems(("instrumental",)).outputs == ("vocals", "instrumental")
    assert StemPlan.for_stems(("drums", "bass")).outputs == ("drums", "bass")
    assert StemPlan.for_stems(("other",)).outputs == ("vocals", "drums", "bass", "other")
    with pytest.raises(ValueError, match="guitar"):
        StemPlan.for_stems(("guitar",))


# the backend, in its process pool


@pytest_asyncio.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    settings: Settings = make_settings(tmp_path / "data", default_backend="local")
    hub = Hub(settings, pm=get_plugin_manager(only=()), recover=False)
    await hub.open()
    try:
        yield hub
    finally:
        await hub.close()


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_song(tmp_path_factory.mktemp("audio") / "demo.wav", seconds=6.0)


@pytest.fixture(scope="module")
def minute_file(demo_file: Path) -> Path:
    """A minute of music: the demo song ten times over (cheaper than synthesizing it)."""
    audio, rate = media.decode(demo_file)
    path = demo_file.with_name("minute.wav")
    media.encode(path, np.tile(audio, 10), rate, OutputFormat.WAV)
    return path


def make_task(source: Path, out_dir: Path, stem_set: StemSet, **kwargs: object) -> SeparationTask:
    values: dict[str, object] = {
        "job_id": "job",
        "stem_set": stem_set,
        "stems": stem_set.stems,
        "output_format": OutputFormat.WAV,
        "input_path": source,
        "out_dir": out_dir,
    }
    values.update(kwargs)
    return SeparationTask.model_validate(values)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, percent: float, message: str | None = None) -> None:
        self.calls.append(percent)


async def test_the_hub_builds_the_local_backend_from_its_entry_point(hub: Hub) -> None:
    backend = hub.backend("local")
    assert isinstance(backend, LocalBackend)
    caps = backend.capabilities
    assert caps.stem_sets == {
        StemSet.VOCALS,
        StemSet.INSTRUMENTAL,
        StemSet.BOTH,
        StemSet.FOUR_STEMS,
    }
    assert caps.formats == set(OutputFormat)
    assert caps.analysis and not caps.resumable
    facts = await backend.describe()
    assert facts["model_bytes"] < 1_000_000


@pytest.mark.parametrize(
    ("stem_set", "fmt"),
    [
        (StemSet.FOUR_STEMS, OutputFormat.WAV),
        (StemSet.BOTH, OutputFormat.FLAC),
        (StemSet.VOCALS, OutputFormat.MP3),
        (StemSet.INSTRUMENTAL, OutputFormat.WAV),
    ],
)
async def test_each_stem_set_writes_exactly_its_stems(
    hub: Hub, demo_file: Path, tmp_path: Path, stem_set: StemSet, fmt: OutputFormat
) -> None:
    backend = hub.backend("local")
    out_dir = tmp_path / "out"
    task = make_task(demo_file, out_dir, stem_set, output_format=fmt)
    progress = Recorder()
    result = await backend.wait(task, await backend.start(task), progress)

    ext = fmt.extension
    assert set(result.stems) == set(stem_set.stems)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{s}.{ext}" for s in stem_set.stems)
    source, rate = media.decode(demo_file)
    for name, stem in result.stems.items():
        assert stem.path == out_dir / f"{name}.{ext}"
        assert stem.size_bytes == stem.path.stat().st_size
        audio, stem_rate = media.decode(stem.path)
        assert stem_rate == rate
        assert audio.shape == source.shape
        assert stem.duration_s == pytest.approx(source.shape[1] / rate)
    assert result.bpm == pytest.approx(demo_spec().bpm, abs=1.5)
    assert result.key == "A minor"
    assert progress.calls[-1] == 100.0
    assert progress.calls == sorted(progress.calls)


async def test_stem_files_sum_back_to_the_input(hub: Hub, demo_file: Path, tmp_path: Path) -> None:
    backend = hub.backend("local")
    task = make_task(demo_file, tmp_path / "out", StemSet.FOUR_STEMS)
    result = await backend.wait(task, await backend.start(task), Recorder())
    source, _ = media.decode(demo_file)
    total = sum(media.decode(stem.path)[0] for stem in result.stems.values() if stem.path)
    # four 16-bit files, each off by its rounding and libsndfile's 32767/32768 scaling
    assert np.max(np.abs(total - source)) <= 4 / 32768


async def test_fast_quality_and_an_id_from_before_a_restart(
    hub: Hub, demo_file: Path, tmp_path: Path
) -> None:
    # engine ids do not survive a restart (not resumable): waiting on an unknown one
    # simply runs the job again
    backend = hub.backend("local")
    task = make_task(demo_file, tmp_path / "out", StemSet.BOTH, quality=Quality.FAST)
    result = await backend.wait(task, "local-from-an-earlier-hub", Recorder())
    assert set(result.stems) == {"vocals", "instrumental"}
    source, _ = media.decode(demo_file)
    total = sum(media.decode(stem.path)[0] for stem in result.stems.values() if stem.path)
    assert np.max(np.abs(total - source)) <= 2 / 32768


async def test_six_stems_are_refused_with_a_pointer_elsewhere(
    hub: Hub, demo_file: Path, tmp_path: Path
) -> None:
    backend = hub.backend("local")
    with pytest.raises(StemhubError) as refused:
        await backend.start(make_task(demo_file, tmp_path / "out", StemSet.SIX_STEMS))
    assert refused.value.code is ErrorCode.UNSUPPORTED_STEM_SET
    assert "STEMSPLIT_API_KEY" in refused.value.message
    assert "demucs" in refused.value.message


async def test_a_cancelled_job_stops_within_a_second(
    hub: Hub, minute_file: Path, tmp_path: Path
) -> None:
    backend = hub.backend("local")
    out_dir = tmp_path / "out"
    task = make_task(minute_file, out_dir, StemSet.FOUR_STEMS)
    engine_id = await backend.start(task)
    working = asyncio.Event()

    async def progress(percent: float, message: str | None = None) -> None:
        if 0.0 < percent < 100.0:
            working.set()

    waiting = asyncio.create_task(backend.wait(task, engine_id, progress))
    await asyncio.wait_for(working.wait(), timeout=60)
    await backend.cancel(engine_id)  # returns once the worker has stopped
    with pytest.raises(StemhubError) as cancelled:
        await waiting
    assert cancelled.value.code is ErrorCode.JOB_CANCELLED
    assert list(out_dir.iterdir()) == []  # partial stems removed
    assert (await backend.describe())["running"] == 0


async def test_progress_flows_and_the_event_loop_keeps_running(
    hub: Hub, minute_file: Path, tmp_path: Path
) -> None:
    backend = hub.backend("local")
    task = make_task(minute_file, tmp_path / "out", StemSet.BOTH)
    progress = Recorder()
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await backend.wait(task, await backend.start(task), progress)
    finally:
        ticking.cancel()
    partial = [p for p in progress.calls if 0.0 < p < 100.0]
    assert len(partial) >= 3
    assert progress.calls == sorted(progress.calls)
    assert progress.calls[-1] == 100.0
    # the separation (seconds of CPU) ran in another process: the loop kept ticking; the
    # bound leaves room for a busy machine starving this process now and then
    assert len(gaps) > 50
    assert float(np.median(gaps)) < 0.05
    assert max(gaps) < 1.0


async def test_a_job_through_the_hub_completes_with_stems_bpm_and_key(
    hub: Hub, demo_file: Path
) -> None:
    request = JobRequest(
        source=Source(kind=SourceKind.FILE, path=str(demo_file)),
        stems=StemSet.BOTH,
        backend="local",
    )
    job = await hub.submit(request)
    finished = await hub.wait_for(job.id, delivered=False, timeout=patience(120))
    assert finished.status is JobStatus.COMPLETED, finished.error_message
    assert set(finished.outputs) == {"vocals", "instrumental"}
    assert finished.audio is not None
    assert finished.audio.key == "A minor"
    assert finished.audio.bpm == pytest.approx(100.0, abs=1.5)

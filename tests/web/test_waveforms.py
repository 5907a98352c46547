"""Waveforms made when a job completes: peaks JSON and PNG beside the stems."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile
from numpy.typing import NDArray

from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, Origin, Source, SourceKind
from stemhub.outputs import CHOSEN_DIR_KEY
from stemhub.web import waveforms as wf
from stemhub.web.png import encode_png

RATE = 44100


def _write(path: Path, audio: NDArray[np.float32]) -> Path:
    soundfile.write(path, audio, RATE)
    return path


def _read_png(data: bytes) -> NDArray[np.uint8]:
    """Decode the PNGs this project writes (RGB, 8 bit, filter 0) from their chunks."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    width, height, depth, color, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, color) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8)
    rows = raw.reshape(height, 1 + width * 3)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def test_peaks_follow_the_music(tmp_path: Path) -> None:
    t = np.arange(4 * RATE) / RATE
    quiet_then_loud = np.where(t < 2, 0.0, 0.8 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    path = _write(tmp_path / "bass.wav", np.stack([quiet_then_loud, quiet_then_loud * 0.5], 1))
    peaks = wf.compute({"bass": path}).peaks["bass"]
    assert peaks.size == wf.PEAK_COUNT
    first, second = peaks[: wf.PEAK_COUNT // 2 - 2], peaks[wf.PEAK_COUNT // 2 + 2 :]
    assert first.max() == 0.0
    assert np.allclose(second, 0.8, atol=0.01)


def test_a_stem_that_does_not_decode_is_left_out(tmp_path: Path) -> None:
    good = _write(tmp_path / "vocals.wav", np.full((RATE, 2), 0.25, dtype=np.float32))
    broken = tmp_path / "drums.wav"
    broken.write_bytes(b"RIFF")
    computed = wf.compute({"vocals": good, "drums": broken})
    assert list(computed.peaks) == ["vocals"]


def test_png_has_one_row_per_stem_in_its_colour(tmp_path: Path) -> None:
    peaks = {"vocals": np.linspace(0, 1, 500, dtype=np.float32), "bass": np.ones(500, np.float32)}
    image = _read_png(wf.render_png(wf.Waveforms(peaks), width=600, row_height=40))
    assert image.shape[1] == 600
    assert image.shape[0] == 2 * 40 + 3 * 6
    right = image[:, -20]
    for index, stem in enumerate(peaks):
        colour = tuple(bytes.fromhex(wf.stem_color(stem).lstrip("#")))
        row = right[6 + index * 46 : 6 + index * 46 + 40]
        assert any(tuple(pixel) == colour for pixel in row), stem


def test_encode_png_round_trips() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(_read_png(encode_png(pixels)), pixels)


async def _done(hub: Hub, audio: Path) -> Job:
    job = await hub.submit(JobRequest(source=Source(kind=SourceKind.FILE, path=str(audio))))
    return await hub.wait_for(job.id, timeout=30)


async def test_a_completed_job_gets_its_waveforms_beside_the_stems(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    job = await _done(stemhub_hub, stemhub_audio_file)
    png = stemhub_hub.waveform_png(job)
    assert png is not None
    stems_dir = stemhub_hub.output_path(job, job.outputs["vocals"])
    assert stems_dir is not None and png.parent == stems_dir.parent
    image = _read_png(png.read_bytes())
    assert image.shape[0] == 4 * 56 + 5 * 6
    data = json.loads((png.parent / wf.PEAKS_FILE).read_text())
    assert list(data["stems"]) == list(job.outputs)
    lengths = {len(values) for values in data["stems"].values()}
    assert len(lengths) == 1 and 500 < lengths.pop() <= wf.PEAK_COUNT  # a 1-second tone
    # no public URL, no page to link to
    assert stemhub_hub.result_page_url(job) is None


async def test_a_shell_users_folder_gets_only_stems(
    stemhub_hub: Hub, stemhub_audio_file: Path, tmp_path: Path
) -> None:
    chosen = tmp_path / "my stems"
    origin = Origin(platform="cli", context={CHOSEN_DIR_KEY: str(chosen)})
    source = Source(kind=SourceKind.FILE, path=str(stemhub_audio_file))
    job = await stemhub_hub.submit(JobRequest(source=source, origin=origin))
    job = await stemhub_hub.wait_for(job.id, timeout=30)
    assert sorted(p.name for p in chosen.iterdir()) == sorted(f"{s}.wav" for s in job.outputs)
    png = stemhub_hub.waveform_png(job)
    assert png is not None and chosen not in png.parents

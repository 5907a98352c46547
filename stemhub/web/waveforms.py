"""Waveforms of a job's stems, made once when the job completes.

Two files in the job's folder of the hub's output store, beside the stems the hub keeps:
``waveforms.json`` (peaks per stem, what the result page draws) and ``waveforms.png``
(all stems, one row each, what chat results attach). Stems a shell user asked to have
written into a folder of their own get their waveforms in the hub's folder all the
same, so nothing but stems lands in theirs.
Audio is decoded block by block, so memory stays small however long the song.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from stemhub import media
from stemhub.errors import StemhubError
from stemhub.web.png import GLYPH_HEIGHT, GLYPH_WIDTH, Image, draw_text, encode_png

if TYPE_CHECKING:
    from stemhub.models import Job
    from stemhub.plugin.api import PluginHub

log = logging.getLogger(__name__)

PEAKS_FILE = "waveforms.json"
PNG_FILE = "waveforms.png"
PEAK_COUNT = 1000
"""Peaks per stem: one every 0.24 s of a 4-minute song, finer than any screen needs."""
PEAK_SCALE = 1000
"""Peaks are stored as integers 0..PEAK_SCALE (fraction of full scale)."""
_ENVELOPE_HOP = 64
_BLOCK = _ENVELOPE_HOP * 4096

STEM_COLORS: dict[str, str] = {
    "vocals": "#ff6b9a",
    "drums": "#ffb347",
    "bass": "#5ad1ff",
    "other": "#a38cff",
    "guitar": "#7ee08a",
    "piano": "#ffe066",
    "instrumental": "#4fd1c5",
}
DEFAULT_COLOR = "#c0c4cc"
BACKGROUND = (20, 22, 28)
LABEL = (230, 232, 238)


def stem_color(stem: str) -> str:
    return STEM_COLORS.get(stem, DEFAULT_COLOR)


def _rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


@dataclass(frozen=True)
class Waveforms:
    """Peaks per stem, each in 0..1, all of one length."""

    peaks: dict[str, NDArray[np.float32]]

    def to_json(self) -> dict[str, Any]:
        stems = {
            stem: [round(float(v) * PEAK_SCALE) for v in values]
            for stem, values in self.peaks.items()
        }
        return {"version": 1, "scale": PEAK_SCALE, "stems": stems}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Waveforms:
        scale = float(data.get("scale", PEAK_SCALE))
        stems = data.get("stems", {})
        return cls({s: np.asarray(v, dtype=np.float32) / scale for s, v in stems.items()})


def envelope(path: Path) -> NDArray[np.float32]:
    """The largest absolute sample of every ``_ENVELOPE_HOP`` frames, over all channels."""
    parts: list[NDArray[np.float32]] = []
    for block in media.decode_blocks(path, _BLOCK):
        loudest = np.abs(block).max(axis=0)
        pad = (-loudest.size) % _ENVELOPE_HOP
        if pad:
            loudest = np.concatenate([loudest, np.zeros(pad, dtype=np.float32)])
        parts.append(loudest.reshape(-1, _ENVELOPE_HOP).max(axis=1))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def peaks_of(values: NDArray[np.float32], count: int = PEAK_COUNT) -> NDArray[np.float32]:
    """``count`` peaks (the maximum of each equal stretch), fewer for very short audio."""
    if values.size == 0:
        return np.zeros(0, dtype=np.float32)
    count = min(count, values.size)
    starts = np.linspace(0, values.size, count + 1).astype(np.int64)[:-1]
    return np.maximum.reduceat(values, starts).astype(np.float32)


def compute(stem_files: dict[str, Path]) -> Waveforms:
    """Peaks of every stem file that decodes; one that does not is left out (logged)."""
    peaks: dict[str, NDArray[np.float32]] = {}
    for stem, path in stem_files.items():
        try:
            peaks[stem] = peaks_of(envelope(path))
        except (StemhubError, OSError) as exc:
            log.info("no waveform for stem %s: %s", stem, type(exc).__name__)
    return Waveforms(peaks)


def render_png(waveforms: Waveforms, *, width: int = 960, row_height: int = 56) -> bytes:
    """All stems, one row each: the stem's name, then its waveform in its colour.

    Each row is scaled to its own loudest moment, so a quiet stem still shows where it
    plays (as on the result page).
    """
    rows = max(1, len(waveforms.peaks))
    gap, scale = 6, 2
    height = rows * row_height + (rows + 1) * gap
    image: Image = np.empty((height, width, 3), dtype=np.uint8)
    image[:, :] = BACKGROUND
    longest = max((len(stem) for stem in waveforms.peaks), default=0)
    label_width = 24 + longest * (GLYPH_WIDTH + 1) * scale
    wave_width = width - label_width - gap
    columns = np.arange(wave_width)
    for index, (stem, values) in enumerate(waveforms.peaks.items()):
        top = gap + index * (row_height + gap)
        color = _rgb(stem_color(stem))
        tint = tuple(int(c * 0.14 + b * 0.86) for c, b in zip(color, BACKGROUND, strict=True))
        image[top : top + row_height, label_width:-gap] = tint
        image[top : top + row_height, gap : gap + 4] = color
        label_top = top + (row_height - GLYPH_HEIGHT * scale) // 2
        draw_text(image, stem, gap + 12, label_top, LABEL, scale=scale)
        middle = top + row_height // 2
        if not values.size:
            continue
        picked = values[(columns * values.size) // wave_width]
        loudest = max(float(values.max()), 1e-6)
        half = np.maximum(0, (picked / loudest * (row_height / 2 - 4))).astype(np.int64)
        for x in range(wave_width):
            image[middle - half[x] : middle + half[x] + 1, label_width + x] = color
    return encode_png(image)


def write(job_dir: Path, waveforms: Waveforms) -> tuple[Path, Path]:
    """Write ``waveforms.json`` and ``waveforms.png`` into the job's folder."""
    peaks_path = job_dir / PEAKS_FILE
    png_path = job_dir / PNG_FILE
    peaks_path.write_text(json.dumps(waveforms.to_json(), separators=(",", ":")))
    png_path.write_bytes(render_png(waveforms))
    return peaks_path, png_path


def stem_files(hub: PluginHub, job: Job) -> dict[str, Path]:
    """The stems of a job that lie on this machine, by stem name."""
    files: dict[str, Path] = {}
    for stem, output in job.outputs.items():
        path = hub.output_path(job, output)
        if path is not None and path.is_file():
            files[stem] = path
    return files


def read_peaks(folder: Path) -> dict[str, Any] | None:
    """The peaks JSON in a job's folder, or None when it was never made."""
    try:
        data: dict[str, Any] = json.loads((folder / PEAKS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


__all__ = [
    "PEAKS_FILE",
    "PEAK_COUNT",
    "PNG_FILE",
    "STEM_COLORS",
    "Waveforms",
    "compute",
    "envelope",
    "peaks_of",
    "read_peaks",
    "render_png",
    "stem_color",
    "stem_files",
    "write",
]

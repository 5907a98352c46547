"""What runs inside the engine's worker processes, and how they talk to the hub.

A job is a plain picklable :class:`WorkOrder`; the answer is a plain :class:`WorkReport`
(errors travel as code + message, since exceptions with keyword arguments do not
survive pickling). While the job runs, progress and the cancel request travel through
a :class:`Control`: a 16-byte file mapped into both processes, the worker writing the
share of the input done and reading the cancel flag at every checkpoint. A file mapping
needs no manager process and leaves nothing behind in shared-memory trackers.
"""

from __future__ import annotations

import importlib
import mmap
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from stemhub import media
from stemhub.artwork import read_cover
from stemhub.backends.local.analysis import Analyzer
from stemhub.backends.local.engine import Engine, StemPlan
from stemhub.backends.parent_watch import die_with_parent
from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import OutputFormat

_LAYOUT = struct.Struct("<dB7x")
"""progress (0..1), cancel flag, padding: 16 bytes."""
BLOCK_SECONDS = 10.0
"""Input is decoded in blocks of this length; the engine's chunks are built from them."""

_engine: Engine | None = None


class Cancelled(Exception):
    """Raised at a checkpoint once the hub asked to stop."""


class Control:
    """Progress out of, and the cancel flag into, a worker: a small shared file."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_LAYOUT.pack(0.0, 0))
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), _LAYOUT.size)

    def __enter__(self) -> Control:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def progress(self) -> float:
        return float(_LAYOUT.unpack_from(self._map)[0])

    @progress.setter
    def progress(self, value: float) -> None:
        struct.pack_into("<d", self._map, 0, value)

    @property
    def cancelled(self) -> bool:
        return bool(self._map[8])

    def cancel(self) -> None:
        self._map[8] = 1

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()
            self._file.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class WorkOrder:
    input_path: Path
    out_dir: Path
    stems: tuple[str, ...]
    output_format: OutputFormat
    control_path: Path
    threads: int = 2
    analysis: bool = True
    spatial: bool = True
    """Stereo Wiener filtering after the masks (off for the FAST quality)."""


@dataclass
class WorkReport:
    stems: dict[str, tuple[Path, int, float]] = field(default_factory=dict)
    """stem -> (path, size in bytes, duration in seconds)"""
    bpm: float | None = None
    key: str | None = None
    error: tuple[str, str, str | None] | None = None
    """(code, message for the user, message for the operator)"""
    cancelled: bool = False
    seconds: float = 0.0


def _get_engine(threads: int) -> Engine:
    """One engine per worker process: the model is read once, the thread pool reused."""
    global _engine
    if _engine is None or _engine.threads != threads:
        if _engine is not None:
            _engine.close()
        _engine = Engine(threads=threads)
    return _engine


def limit_blas_threads() -> bool:
    """Keep BLAS to one thread in this process; say whether that was possible.

    The engine already spreads its work over its own threads; a BLAS library that also
    starts a thread per core for every small matrix product oversubscribes the CPU and
    makes a job about half again slower. ``threadpoolctl`` does this portably (OpenBLAS,
    MKL, BLIS); without it the engine still works, only slower.
    """
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return False
    threadpoolctl.threadpool_limits(1, user_api="blas")
    return True


def warm_up() -> None:
    """Pool initializer: die with the forkserver, one BLAS thread, the model loaded."""
    die_with_parent(kernel_signal=True)
    limit_blas_threads()
    _get_engine(max(1, min(4, os.cpu_count() or 1)))


def run(order: WorkOrder) -> WorkReport:
    """Separate one file into ``order.stems``.

    Expected failures (bad audio, cancel, a full disk) come back in the report; anything
    else is a bug and propagates, with its traceback, to the hub's log.
    """
    started = time.perf_counter()
    try:
        with Control(order.control_path) as control:
            report = _separate(order, control)
    except Cancelled:
        report = WorkReport(cancelled=True)
    except StemhubError as exc:
        report = WorkReport(error=(exc.code.value, exc.message, exc.operator_message))
    except (OSError, MemoryError) as exc:
        report = WorkReport(
            error=(
                ErrorCode.BACKEND_ERROR.value,
                "The local engine could not write the stems (out of disk space or memory?).",
                f"{type(exc).__name__}: {exc}",
            )
        )
    report.seconds = time.perf_counter() - started
    return report


def _separate(order: WorkOrder, control: Control) -> WorkReport:
    info = media.probe(order.input_path)
    sample_rate = int(info.sample_rate or 0)
    channels = int(info.channels or 0)
    if sample_rate <= 0 or channels <= 0:
        raise StemhubError(ErrorCode.CORRUPT_AUDIO, "The audio file has no readable sound.")
    if order.output_format is OutputFormat.MP3:
        sample_rate = media.mp3_rate_for(sample_rate)  # a 96 kHz master gives 48 kHz MP3s
    bit_depth = media.bit_depth_of(order.input_path)
    tags = media.read_tags(order.input_path)
    cover = read_cover(order.input_path)
    total = max(1.0, (info.duration_s or 0.0) * sample_rate)
    plan = StemPlan.for_stems(order.stems)
    engine = _get_engine(order.threads)
    engine.spatial = order.spatial
    analyzer = Analyzer(sample_rate) if order.analysis else None

    def checkpoint(done: float) -> None:
        if control.cancelled:
            raise Cancelled
        # chunks overlap, so a new chunk starts a little behind where the last one ended
        control.progress = max(control.progress, min(0.99, done / total))

    def blocks() -> Iterator[media.AudioArray]:
        block_frames = round(BLOCK_SECONDS * sample_rate)
        for block in media.decode_blocks(order.input_path, block_frames, sample_rate=sample_rate):
            if control.cancelled:
                raise Cancelled
            if analyzer is not None:
                analyzer.feed(block)
            yield block

    extension = order.output_format.extension
    order.out_dir.mkdir(parents=True, exist_ok=True)
    writers = {
        stem: media.AudioWriter(
            order.out_dir / f"{stem}.{extension}",
            sample_rate,
            channels,
            order.output_format,
            bit_depth=bit_depth,
            tags=media.tags_for_stem(tags, stem),
            cover=cover,
        )
        for stem in order.stems
    }
    try:
        for piece in engine.stream(blocks(), sample_rate, plan, checkpoint=checkpoint):
            for stem, writer in writers.items():
                writer.write(piece[stem])
                if control.cancelled:
                    raise Cancelled
        report = WorkReport()
        for stem, writer in writers.items():
            size = writer.close()
            report.stems[stem] = (writer.path, size, writer.frames_written / sample_rate)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    if analyzer is not None:
        report.bpm, report.key = analyzer.bpm(), analyzer.key()
    control.progress = 1.0
    return report


__all__ = [
    "BLOCK_SECONDS",
    "Cancelled",
    "Control",
    "WorkOrder",
    "WorkReport",
    "limit_blas_threads",
    "run",
    "warm_up",
]

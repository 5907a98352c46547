"""The HT-Demucs worker process: loads the model once, separates one file at a time.

The hub runs this in a separate process (``spawn``) so torch never shares the event
loop's process: the loop stays responsive, a GPU or CPU crash takes down only the
worker, and cancelling a job is ending the worker. The two sides talk over a
``multiprocessing`` pipe with the small dataclasses below; torch and demucs are imported
only here, inside the worker, so ``stemhub`` imports without them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stemhub.backends.demucs.weights import ModelFiles
from stemhub.backends.parent_watch import die_with_parent
from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import OutputFormat, Quality, StemSet

if TYPE_CHECKING:
    from stemhub import media

QUALITY_SETTINGS: dict[Quality, tuple[int, float]] = {
    Quality.FAST: (0, 0.1),
    Quality.BALANCED: (1, 0.25),
    Quality.BEST: (4, 0.5),
}
"""Random time shifts averaged (demucs' "shift trick") and overlap between segments."""

LOAD_END, DECODE_END, SEPARATE_END = 5.0, 10.0, 92.0


@dataclass(frozen=True)
class WorkOrder:
    input_path: Path
    out_dir: Path
    stem_set: StemSet
    stems: tuple[str, ...]
    output_format: OutputFormat
    quality: Quality
    model: ModelFiles
    device: str
    threads: int | None = None


@dataclass(frozen=True)
class Progress:
    percent: float
    message: str | None = None


@dataclass(frozen=True)
class StemWritten:
    stem: str
    path: Path
    size_bytes: int
    duration_s: float


@dataclass(frozen=True)
class WorkDone:
    stems: tuple[StemWritten, ...]
    device: str
    sources: tuple[str, ...]
    bpm: float | None = None
    key: str | None = None


@dataclass(frozen=True)
class WorkFailed:
    code: str
    message: str
    operator_message: str | None = None

    def to_error(self) -> StemhubError:
        return StemhubError(self.code, self.message, operator_message=self.operator_message)


def stem_groups(stem_set: StemSet, sources: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Which model sources add up to each stem of ``stem_set``.

    Stems the set does not name separately fold into ``other`` (a 6-source model asked
    for four stems puts guitar and piano there) or into ``instrumental`` (every source
    but the vocals).
    """
    needed = {"vocals"} | ({"drums", "bass"} if stem_set is StemSet.FOUR_STEMS else set())
    if stem_set is StemSet.SIX_STEMS:
        needed = set(StemSet.SIX_STEMS.stems)
    missing = sorted(needed - set(sources))
    if missing:
        code = ErrorCode.UNSUPPORTED_STEM_SET
        if stem_set is not StemSet.SIX_STEMS:
            code = ErrorCode.BACKEND_ERROR
        raise StemhubError(
            code,
            f"This HT-Demucs model cannot split into {stem_set.value}: it has no "
            f"{', '.join(missing)} source. Six stems need the htdemucs_6s model "
            "(STEMHUB_DEMUCS_MODEL=htdemucs_6s).",
            operator_message=f"model sources: {', '.join(sources)}",
        )
    if stem_set is StemSet.SIX_STEMS:
        return {stem: (stem,) for stem in StemSet.SIX_STEMS.stems}
    if stem_set is StemSet.FOUR_STEMS:
        rest = tuple(s for s in sources if s not in ("vocals", "drums", "bass"))
        return {"vocals": ("vocals",), "drums": ("drums",), "bass": ("bass",), "other": rest}
    rest = tuple(s for s in sources if s != "vocals")
    return {"vocals": ("vocals",), "instrumental": rest}


def load_model(files: ModelFiles) -> Any:
    """The model (or bag of models) from disk, through demucs' own loaders."""
    from demucs.apply import BagOfModels
    from demucs.hf import load_safetensors_model
    from demucs.pretrained import get_model
    from demucs.states import load_model as load_package

    in_repo_layout = files.where != "the torch hub cache"
    if in_repo_layout and all(member.suffix == ".th" for member in files.members):
        return get_model(files.name, repo=files.folder)
    loaders: dict[str, Callable[[Path], Any]] = {
        ".safetensors": load_safetensors_model,
        ".th": load_package,
    }
    models = [loaders[member.suffix](member) for member in files.members]
    if not files.bag:
        model = models[0]
    else:
        weights = [list(row) for row in files.weights] if files.weights else None
        model = BagOfModels(models, weights, files.segment)
    model.eval()
    return model


def pick_device(setting: str) -> str:
    import torch

    cuda = bool(torch.cuda.is_available())
    if setting == "auto":
        return "cuda" if cuda else "cpu"
    if setting.startswith("cuda") and not cuda:
        raise StemhubError(
            ErrorCode.BACKEND_UNAVAILABLE,
            "HT-Demucs is set to run on a GPU, but torch sees no CUDA device here.",
            operator_message="Set STEMHUB_DEMUCS_DEVICE=auto or cpu, or install a CUDA build "
            "of torch.",
        )
    return setting


def _set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def describe_device(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({torch.get_num_threads()} threads)"


class _Tracker:
    """Turns demucs' per-segment callbacks into a rising percentage on the pipe."""

    def __init__(self, conn: Connection, length: int, shifts: int, segment_s: float, rate: int):
        self.conn = conn
        self.passes = max(1, shifts)
        self.length = length + (rate // 2 if shifts else 0)
        self.segment = int(segment_s * rate)
        self.sent = 0.0

    def send(self, percent: float, message: str | None = None) -> None:
        if percent >= self.sent + 1.0 or message is not None:
            self.sent = max(self.sent, percent)
            self.conn.send(Progress(round(self.sent, 1), message))

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("state") != "end":
            return
        within = min(1.0, (int(event["segment_offset"]) + self.segment) / max(1, self.length))
        done = (int(event["shift_idx"]) + within) / self.passes
        fraction = (int(event["model_idx_in_bag"]) + done) / max(1, int(event["models"]))
        self.send(DECODE_END + (SEPARATE_END - DECODE_END) * fraction)


def _analyse(audio: media.AudioArray, rate: int) -> tuple[float | None, str | None]:
    """BPM and key of the mix, by the built-in engine's analysis, as every backend reports."""
    try:
        from stemhub.backends.local.analysis import analyse
    except ImportError:
        return None, None
    return analyse(audio, rate)


def _model_segment(model: Any) -> float:
    inner = getattr(model, "models", None)
    first = inner[0] if inner is not None else model
    return float(getattr(first, "segment", 8.0))


def _to_model(audio: media.AudioArray, rate: int, model: Any) -> Any:
    """The mix as the model wants it: its channel count and its sample rate."""
    import torch
    from julius.resample import resample_frac

    mix = torch.from_numpy(audio)
    wanted = int(model.audio_channels)
    if mix.shape[0] < wanted:
        mix = mix[:1].expand(wanted, -1)
    elif mix.shape[0] > wanted:
        mix = mix[:wanted]
    if rate != int(model.samplerate):
        mix = resample_frac(mix.contiguous(), rate, int(model.samplerate))
    return mix


def _from_model(wave: Any, model_rate: int, rate: int, length: int, channels: int) -> Any:
    """A stem back at the input's rate, length (to the sample) and channel count."""
    import torch
    from julius.resample import resample_frac

    if rate != model_rate:
        wave = resample_frac(wave.contiguous(), model_rate, rate, output_length=length)
    wave = torch.nn.functional.pad(wave[..., :length], (0, max(0, length - wave.shape[-1])))
    if channels == 1:
        wave = wave.mean(0, keepdim=True)
    return wave.to("cpu", torch.float32).numpy()


def separate(order: WorkOrder, model: Any, device: str, conn: Connection) -> WorkDone:
    """Decode, resample to the model's rate, separate, resample back, write each stem.

    The mix is normalised the way demucs was trained (zero mean, unit deviation) and
    the estimates scaled back, so quiet and loud songs separate alike.
    """
    import torch
    from demucs.apply import apply_model

    from stemhub import media  # the worker's own imports: the hub loads this module too
    from stemhub.artwork import read_cover

    sources = tuple(str(s) for s in model.sources)
    groups = stem_groups(order.stem_set, sources)
    audio, rate = media.decode(order.input_path)
    channels, length = audio.shape
    bpm, key = _analyse(audio, rate)
    model_rate = int(model.samplerate)
    mix = _to_model(audio, rate, model)
    reference = mix.mean(0)
    center, scale = reference.mean(), reference.std()
    if not float(scale) > 1e-8:
        scale = torch.ones(())
    shifts, overlap = QUALITY_SETTINGS[order.quality]
    tracker = _Tracker(conn, mix.shape[-1], shifts, _model_segment(model), model_rate)
    tracker.send(DECODE_END, f"separating on {device}")
    try:
        with torch.no_grad():
            estimates = apply_model(
                model,
                ((mix - center) / scale)[None],
                shifts=shifts,
                split=True,
                overlap=overlap,
                device=device,
                callback=tracker,
            )[0]
    except torch.cuda.OutOfMemoryError as exc:
        raise StemhubError(
            ErrorCode.BACKEND_ERROR,
            "The GPU ran out of memory separating this file; try a shorter file.",
            operator_message=f"{exc}; STEMHUB_DEMUCS_DEVICE=cpu avoids the GPU",
        ) from exc
    estimates = estimates * scale + center / len(sources)
    order.out_dir.mkdir(parents=True, exist_ok=True)
    written: list[StemWritten] = []
    wanted = [stem for stem in order.stems if stem in groups]
    tags, cover = media.read_tags(order.input_path), read_cover(order.input_path)
    for done, stem in enumerate(wanted):
        indices = [sources.index(source) for source in groups[stem]]
        wave = _from_model(estimates[indices].sum(0), model_rate, rate, length, channels)
        path = order.out_dir / f"{stem}.{order.output_format.extension}"
        size = media.encode(
            path,
            wave,
            rate,
            order.output_format,
            tags=media.tags_for_stem(tags, stem),
            cover=cover,
        )
        written.append(StemWritten(stem, path, size, length / rate))
        tracker.send(SEPARATE_END + (100.0 - SEPARATE_END) * (done + 1) / len(wanted))
    return WorkDone(tuple(written), describe_device(device), sources, bpm, key)


def _load_or_explain(files: ModelFiles) -> Any:
    try:
        return load_model(files)
    except Exception as exc:  # demucs raises many kinds on a bad file
        raise StemhubError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"The HT-Demucs weights for {files.name} could not be loaded; they may be "
            "damaged. Run `stemhub models pull` again.",
            operator_message=f"{files.describe()}: {type(exc).__name__}: {exc}",
        ) from exc


def serve(conn: Connection) -> None:
    """The worker's main loop: one :class:`WorkOrder` in, progress and one answer out.

    The model stays loaded between jobs; the loop ends when the hub closes the pipe.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    loaded: tuple[tuple[ModelFiles, str], Any] | None = None
    while True:
        try:
            order: WorkOrder = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if order.threads is not None:
                _set_threads(order.threads)
            device = pick_device(order.device)
            key = (order.model, device)
            if loaded is None or loaded[0] != key:
                loaded = None
                conn.send(Progress(1.0, f"loading {order.model.describe()}"))
                loaded = (key, _load_or_explain(order.model))
            conn.send(Progress(LOAD_END, "decoding"))
            answer: WorkDone | WorkFailed = separate(order, loaded[1], device, conn)
        except StemhubError as error:
            answer = WorkFailed(error.code.value, error.message, error.operator_message)
        except Exception as exc:  # noqa: BLE001 - any failure must reach the hub as an answer
            answer = WorkFailed(
                ErrorCode.BACKEND_ERROR.value,
                "HT-Demucs could not separate this file.",
                f"{type(exc).__name__}: {exc}",
            )
        conn.send(answer)


__all__ = [
    "QUALITY_SETTINGS",
    "Progress",
    "StemWritten",
    "WorkDone",
    "WorkFailed",
    "WorkOrder",
    "serve",
    "stem_groups",
]

"""Audio in and out: what a file really is, how long it runs, its samples, and stems back.

People send whatever their phone or browser made and name it anything, so nothing here
trusts an extension: :func:`sniff` reads magic bytes, :func:`probe` opens the file with
FFmpeg (PyAV's bundled build) and checks that it holds sound that is all there, and
:func:`decode` gives float samples. Every failure is a :class:`StemhubError` with a code
and a sentence for the person who sent the file, never an FFmpeg traceback.

Stems are written with libsndfile (WAV, FLAC) and LAME through FFmpeg (MP3), each to a
temporary name first and renamed when complete, so a crash never leaves half a stem under
the name a user will download.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import numpy as np
import soundfile
from numpy.typing import NDArray

from stemhub.artwork import Cover, add_cover_stream, add_flac_picture, mux_cover
from stemhub.errors import ErrorCode, StemhubError
from stemhub.fetch import format_bytes
from stemhub.models import AudioInfo, OutputFormat

AudioArray = NDArray[np.float32]

SUPPORTED_CONTAINERS = ("mp3", "wav", "flac", "m4a", "aac", "ogg", "webm", "matroska", "aiff")
MP3_SAMPLE_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
MP3_LAME_QUALITY = 5
"""LAME's algorithm quality, 0 (slowest) to 9 (fastest); see :class:`_Mp3Sink`."""

_SEND_INSTEAD = "Send MP3, WAV, FLAC, M4A/AAC, OGG, Opus or WebM audio."
_SNIFF_BYTES = 64 * 1024
_DEMUXERS = {
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
    "flac": "flac",
    "m4a": "mov",
    "ogg": "ogg",
    "webm": "matroska",
    "matroska": "matroska",
    "aiff": "aiff",
}
_LABELS = {
    "mp3": "MP3",
    "aac": "AAC",
    "wav": "WAV",
    "flac": "FLAC",
    "m4a": "M4A/MP4",
    "ogg": "OGG",
    "webm": "WebM",
    "matroska": "Matroska",
    "aiff": "AIFF",
}
# A file whose packets end this much before its header says is cut short.
_TRUNCATION_SLACK_S = 0.25
_TRUNCATION_SLACK_RATIO = 0.02
_DECODE_CHECK_PACKETS = 64
_BAD_PACKETS_ALLOWED = 2
_BAD_PACKET_RATIO = 0.01


def format_duration(seconds: float) -> str:
    """A length the way people say it: ``"0.3 seconds"``, ``"72 minutes"``, ``"2.5 hours"``.

    Rounded up, so audio just over a limit never reads as equal to it.
    """
    if seconds < 60:
        value, unit = math.ceil(seconds * 10) / 10, "second"
    elif seconds < 2 * 3600:
        value, unit = math.ceil(seconds / 6) / 10, "minute"
    else:
        value, unit = math.ceil(seconds / 360) / 10, "hour"
    return f"{value:g} {unit}" + ("" if value == 1 else "s")


def _label(container: str) -> str:
    return _LABELS.get(container, container.upper())


def _read_head(path: Path, size: int = _SNIFF_BYTES) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except FileNotFoundError as exc:
        raise StemhubError(ErrorCode.NOT_FOUND, f"There is no file named {path.name}.") from exc
    except IsADirectoryError as exc:
        raise StemhubError(
            ErrorCode.INVALID_REQUEST, f"{path.name} is a folder, not an audio file."
        ) from exc
    except OSError as exc:
        raise StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"The file {path.name} could not be read.",
            operator_message=str(exc),
        ) from exc


def sniff(path: Path) -> str:
    """The container format from the file's first bytes, whatever its name says.

    Returns one of :data:`SUPPORTED_CONTAINERS`. Anything else raises
    ``UNSUPPORTED_FORMAT`` naming what the file looks like (an image, an HTML page, an
    archive), which is what a user needs to hear when a share link gave them a login
    page instead of the song.
    """
    head = _read_head(path)
    if not head:
        raise StemhubError(ErrorCode.UNSUPPORTED_FORMAT, f"The file is empty. {_SEND_INSTEAD}")
    found = _container_of(head, path)
    if found is not None:
        return found
    what = _describe(head)
    if what is None:
        message = f"The file is not in an audio format we can read. {_SEND_INSTEAD}"
    else:
        message = f"The file does not look like audio: it looks like {what}. {_SEND_INSTEAD}"
    raise StemhubError(ErrorCode.UNSUPPORTED_FORMAT, message, details={"looks_like": what})


def _id3_end(head: bytes, offset: int) -> int | None:
    """Where the ID3v2 tag starting at ``offset`` ends, or None if there is none."""
    tag = head[offset : offset + 10]
    if len(tag) < 10 or tag[:3] != b"ID3" or any(b & 0x80 for b in tag[6:10]):
        return None
    size = (tag[6] << 21) | (tag[7] << 14) | (tag[8] << 7) | tag[9]
    footer = 10 if tag[5] & 0x10 else 0
    return offset + 10 + size + footer


def _container_of(head: bytes, path: Path) -> str | None:
    offset = 0
    tagged = False
    while (end := _id3_end(head, offset)) is not None:
        tagged = True
        offset = end
        if offset + 64 > len(head):
            head = head[:offset] + _read_at(path, offset, _SNIFF_BYTES)
    data = head[offset:]
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] in (b"RIFF", b"RF64", b"BW64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if data[:4] == b"OggS":
        return "ogg"
    if data[4:8] == b"ftyp":
        return None if data[8:12] in (b"heic", b"heix", b"avif", b"mif1", b"msf1") else "m4a"
    if data[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "m4a"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in data[:64] else "matroska"
    frames = _mpeg_frames(data, 0)
    if frames is not None:
        return frames
    if tagged or data[:1] == b"\x00":
        # Some encoders leave padding or junk between the tag and the first frame.
        start = len(data) - len(data.lstrip(b"\x00"))
        for position in range(start, min(len(data) - 4, 16 * 1024)):
            if data[position] == 0xFF and (kind := _mpeg_frames(data, position, need=3)):
                return kind
    return None


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


_MPEG_BITRATES = {
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025)


def _frame_length(header: bytes) -> tuple[str, int] | None:
    """The kind and byte length of an MPEG audio (layer II/III) or ADTS frame header."""
    if len(header) < 7 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version_bits = (header[1] >> 3) & 3
    layer_bits = (header[1] >> 1) & 3
    if layer_bits == 0:
        if header[1] & 0xF0 != 0xF0 or (header[2] >> 2) & 0xF >= len(_ADTS_RATES):
            return None
        length = ((header[3] & 3) << 11) | (header[4] << 3) | (header[5] >> 5)
        return ("aac", length) if length >= 7 else None
    if version_bits == 1 or layer_bits == 3:  # reserved version, or layer I
        return None
    version = {3: 1, 2: 2, 0: 25}[version_bits]
    layer = 3 if layer_bits == 1 else 2
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 3
    if bitrate_index in (0, 15) or rate_index == 3:
        return None
    bitrate = _MPEG_BITRATES[(1 if version == 1 else 2, layer)][bitrate_index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    factor = 72 if version != 1 and layer == 3 else 144
    return "mp3", factor * bitrate // rate + padding


def _mpeg_frames(data: bytes, position: int, need: int = 2) -> str | None:
    """``"mp3"``/``"aac"`` if ``need`` well-formed frames follow each other from ``position``."""
    kind: str | None = None
    for _ in range(need):
        frame = _frame_length(data[position : position + 7])
        if frame is None or (kind is not None and frame[0] != kind):
            # A single frame that ends exactly at the end of the file still counts.
            return kind if kind is not None and position == len(data) else None
        kind = frame[0]
        position += frame[1]
    return kind


_NOT_AUDIO = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
    (b"MThd", "a MIDI file (notes, not recorded sound)"),
    (b"#!AMR", "an AMR voice recording"),
    (b"0&\xb2u\x8ef\xcf\x11", "a Windows Media file"),
    (b".snd", "a Sun/NeXT audio file"),
    (b"caff", "a Core Audio file"),
)


def _describe(head: bytes) -> str | None:
    for magic, what in _NOT_AUDIO:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF":
        kinds = {b"WEBP": "a WebP image", b"AVI ": "an AVI video"}
        return kinds.get(head[8:12], "a RIFF file that is not WAV audio")
    if head[4:8] == b"ftyp":
        return "an HEIC/AVIF image"
    text = head[:4096].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n").lower()
    if text.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in text[:1024]:
        return "a web page (HTML): the link may need a login, or lead to a preview page"
    if text.startswith("<?xml") or text.startswith("<"):
        return "an XML document, often an error message from a storage service"
    if text.startswith(("{", "[")):
        return "a JSON document, often an error message from an API"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text[:1024])
    if text and printable / len(text[:1024]) > 0.95:
        return "a text file"
    return None


# The demuxer is already known from the magic bytes, so FFmpeg need not read megabytes
# to guess the stream layout (its default 5 MB probe cost most of a short job's CPU).
# FFmpeg's probe time grows with the bytes it reads (measured: 9.2 ms per WAV open by
# default, 2.5 ms at 64 KiB, 0.4 ms at 4 KiB). Containers whose header states the
# sample rate and channels need only the header; raw frame streams (ADTS AAC, MP3) and
# the others get room for a few frames.
_HEADER_ONLY = frozenset({"wav", "flac", "aiff"})
_PROBE_BYTES_HEADER = "4096"
_PROBE_BYTES_FRAMES = "65536"


def _open(path: Path, container: str) -> Any:
    """An FFmpeg input for ``path``, as the demuxer its magic bytes named."""
    try:
        return av.open(
            str(path),
            format=_DEMUXERS[container],
            metadata_errors="replace",
            options={
                "probesize": _PROBE_BYTES_HEADER
                if container in _HEADER_ONLY
                else _PROBE_BYTES_FRAMES
            },
        )
    except (av.FFmpegError, ValueError) as exc:
        raise _damaged(container, exc) from exc


def _damaged(container: str, exc: BaseException | None = None) -> StemhubError:
    return StemhubError(
        ErrorCode.CORRUPT_AUDIO,
        f"The {_label(container)} file is damaged or incomplete and cannot be read.",
        operator_message=f"{type(exc).__name__}: {exc}" if exc is not None else None,
    )


def _audio_stream(container: Any, kind: str) -> Any:
    if container.streams.audio:
        return container.streams.audio[0]
    if container.streams.video:
        message = "The file is a video with no sound track."
    else:
        message = "The file has no audio track."
    raise StemhubError(ErrorCode.UNSUPPORTED_FORMAT, message, details={"container": kind})


def _no_sound(container: str) -> StemhubError:
    return StemhubError(
        ErrorCode.CORRUPT_AUDIO,
        f"The {_label(container)} file holds no sound: its audio track is empty.",
    )


@dataclass
class _Scan:
    first: float | None = None
    end: float | None = None
    decoded: bool = False


def _scan_packets(container: Any, stream: Any) -> _Scan:
    """Read every packet (cheap: no decoding) to learn where the audio really ends.

    The first packets are also decoded, so a file whose frames are garbage is caught
    here rather than halfway through a separation.
    """
    scan = _Scan()
    time_base = float(stream.time_base)
    checked = 0
    for packet in container.demux(stream):
        if packet.pts is not None:
            start = packet.pts * time_base
            end = (packet.pts + (packet.duration or 0)) * time_base
            scan.first = start if scan.first is None else min(scan.first, start)
            scan.end = end if scan.end is None else max(scan.end, end)
        if not scan.decoded and checked < _DECODE_CHECK_PACKETS:
            checked += 1
            scan.decoded = any(frame.samples > 0 for frame in packet.decode())
    return scan


def _declared_duration(container: Any, stream: Any) -> float | None:
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(container.duration) / 1_000_000
    return None


def _mp3_has_length_tag(path: Path) -> bool:
    """Whether the MP3 states its frame count (Xing/Info/VBRI), so its length is exact.

    Without such a tag FFmpeg estimates the length from the bit rate, which is wrong for
    VBR files, and a short file cannot be told from a wrong estimate.
    """
    head = _read_head(path, 256 * 1024)
    offset = 0
    while (end := _id3_end(head, offset)) is not None:
        offset = end
    frame = head[offset : offset + 200] if offset < len(head) else _read_at(path, offset, 200)
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))


def _wav_data_sizes(path: Path, size: int) -> tuple[int, int] | None:
    """The ``data`` chunk's size as the WAV header states it, and as the file holds it.

    FFmpeg quietly clamps a WAV's length to what is on disk, so a cut-off upload would
    look whole; the header tells the truth. None when the header states no size.
    """
    head = _read_head(path, 1024 * 1024)
    if head[:4] != b"RIFF":
        return None  # RF64/BW64 keep the real size elsewhere; FFmpeg reads those itself
    position = 12
    while position + 8 <= len(head):
        chunk_id: bytes
        chunk_size: int
        chunk_id, chunk_size = struct.unpack_from("<4sI", head, position)
        if chunk_id == b"data":
            if chunk_size in (0, 0xFFFFFFFF):
                return None  # a streaming writer that never came back to fill it in
            return chunk_size, size - position - 8
        position += 8 + chunk_size + (chunk_size & 1)
    return None


def probe(path: Path) -> AudioInfo:
    """Facts about an audio file, after checking it is audio and all of it is there.

    Raises ``UNSUPPORTED_FORMAT`` (not audio, or a video without sound) and
    ``CORRUPT_AUDIO`` (unreadable, no sound, or cut short: a header that promises more
    than the file holds). A cut-off OGG cannot be told from a shorter one, since the
    format states no total length; it probes as the audio that is there.
    """
    kind = sniff(path)
    size = path.stat().st_size
    with _open(path, kind) as container:
        stream = _audio_stream(container, kind)
        context = stream.codec_context
        sample_rate, channels = int(context.sample_rate or 0), int(context.channels or 0)
        if sample_rate <= 0 or channels <= 0:
            raise _damaged(kind)
        declared = _declared_duration(container, stream)
        try:
            scan = _scan_packets(container, stream)
        except (av.FFmpegError, ValueError) as exc:
            raise _damaged(kind, exc) from exc
        codec = str(context.codec.canonical_name)
    if not scan.decoded or scan.end is None or scan.first is None:
        raise _no_sound(kind)
    measured = scan.end - scan.first
    if kind == "wav" and (sizes := _wav_data_sizes(path, size)) is not None:
        stated, held = sizes
        if held < stated:
            raise _cut_short(kind, measured * stated / max(held, 1), measured)
    reliable = declared is not None and (kind != "mp3" or _mp3_has_length_tag(path))
    if reliable and declared is not None:
        slack = max(_TRUNCATION_SLACK_S, _TRUNCATION_SLACK_RATIO * declared)
        if measured < declared - slack:
            raise _cut_short(kind, declared, measured)
        duration = declared
    else:
        duration = measured
    if duration <= 0:
        raise _no_sound(kind)
    return AudioInfo(
        container=kind,
        codec=codec,
        sample_rate=sample_rate,
        channels=channels,
        duration_s=round(duration, 3),
        size_bytes=size,
    )


def _cut_short(kind: str, declared: float | None, measured: float) -> StemhubError:
    promised = f" it should run {format_duration(declared)} but" if declared else ""
    return StemhubError(
        ErrorCode.CORRUPT_AUDIO,
        f"The {_label(kind)} file is cut short:{promised} the audio stops after "
        f"{format_duration(measured)}. Upload it again, or send the complete file.",
        details={"declared_s": declared, "present_s": round(measured, 3)},
    )


def check_limits(
    info: AudioInfo,
    *,
    max_bytes: int | None,
    max_duration_s: float | None,
    min_duration_s: float = 0.5,
) -> None:
    """Refuse a file over the size or length limit, or too short to split.

    A limit of ``None`` is no limit; a fact ``info`` lacks is not checked.
    """
    size = info.size_bytes
    if max_bytes is not None and size is not None and size > max_bytes:
        raise StemhubError(
            ErrorCode.FILE_TOO_LARGE,
            f"The file is {format_bytes(size)}; the limit is {format_bytes(max_bytes)}.",
            details={"size_bytes": size, "max_bytes": max_bytes},
        )
    duration = info.duration_s
    if duration is None:
        return
    if max_duration_s is not None and duration > max_duration_s:
        raise StemhubError(
            ErrorCode.AUDIO_TOO_LONG,
            f"The audio is {format_duration(duration)} long; "
            f"the limit is {format_duration(max_duration_s)}.",
            details={"duration_s": duration, "max_duration_s": max_duration_s},
        )
    if duration < min_duration_s:
        raise StemhubError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"The audio is {format_duration(duration)} long; "
            f"it needs to be at least {format_duration(min_duration_s)}.",
            details={"duration_s": duration, "min_duration_s": min_duration_s},
        )


def _decoded_chunks(path: Path, sample_rate: int | None) -> Iterator[tuple[AudioArray, int]]:
    """Float32 ``(channels, n)`` chunks at ``sample_rate`` (or the file's), and that rate.

    A few undecodable packets are skipped, as players do (the last frame of a cut-off
    stream, a damaged frame mid-way); more than :data:`_BAD_PACKET_RATIO` of them makes
    the file ``CORRUPT_AUDIO``. Resampled output is trimmed or padded at the end to
    ``round(n_in * out / in)`` samples, so the length is exact to the sample whatever
    the resampler's flush gives.
    """
    kind = sniff(path)
    with _open(path, kind) as container:
        stream = _audio_stream(container, kind)
        native = int(stream.codec_context.sample_rate or 0)
        if native <= 0:
            raise _damaged(kind)
        rate = sample_rate or native
        resampler = av.AudioResampler(format="fltp", rate=None if rate == native else rate)
        taken = given = packets = bad = 0
        held: AudioArray | None = None
        try:
            for packet in container.demux(stream):
                packets += 1
                try:
                    frames = packet.decode()
                except av.InvalidDataError as exc:
                    bad += 1
                    if bad > _BAD_PACKETS_ALLOWED and bad > packets * _BAD_PACKET_RATIO:
                        raise _damaged(kind, exc) from exc
                    continue
                outputs = []
                for frame in frames:
                    taken += frame.samples
                    outputs.extend(resampler.resample(frame))
                if packet.size == 0:  # the flush packet at the end of the stream
                    outputs.extend(resampler.resample(None))
                for out in outputs:
                    chunk = out.to_ndarray().astype(np.float32, copy=False)
                    if chunk.shape[1] == 0:
                        continue
                    if held is not None:
                        given += held.shape[1]
                        yield held, rate
                    held = chunk
        except (av.FFmpegError, ValueError) as exc:
            raise _damaged(kind, exc) from exc
    if taken == 0 or held is None:
        raise _no_sound(kind)
    wanted = taken if rate == native else round(taken * rate / native)
    left = wanted - given
    if left > held.shape[1]:
        pad = np.zeros((held.shape[0], left - held.shape[1]), dtype=np.float32)
        held = np.concatenate([held, pad], axis=1)
    if left > 0:
        yield held[:, :left], rate


def decode_blocks(
    path: Path,
    block_frames: int,
    *,
    sample_rate: int | None = None,
    mono: bool = False,
) -> Iterator[AudioArray]:
    """The file's audio as float32 ``(channels, block_frames)`` blocks, the last shorter.

    Memory stays near one block however long the file, for engines that separate in
    windows. Samples are clipped to [-1, 1]; ``mono`` averages the channels.
    """
    if block_frames < 1:
        raise ValueError("block_frames must be at least 1")
    pending: list[AudioArray] = []
    pending_frames = 0
    for chunk, _rate in _decoded_chunks(path, sample_rate):
        part = _finish(chunk, mono)
        pending.append(part)
        pending_frames += part.shape[1]
        if pending_frames < block_frames:
            continue
        joined = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
        whole = pending_frames - pending_frames % block_frames
        for start in range(0, whole, block_frames):
            yield np.ascontiguousarray(joined[:, start : start + block_frames])
        rest = joined[:, whole:]
        pending = [rest] if rest.shape[1] else []
        pending_frames = rest.shape[1]
    if pending_frames:
        yield np.ascontiguousarray(np.concatenate(pending, axis=1))


def _finish(chunk: AudioArray, mono: bool) -> AudioArray:
    """Clip (lossy decoders overshoot a little) and, for ``mono``, average the channels."""
    out = chunk.mean(axis=0, keepdims=True, dtype=np.float32) if mono else chunk
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


def decode(
    path: Path, *, sample_rate: int | None = None, mono: bool = False
) -> tuple[AudioArray, int]:
    """The whole file as float32 ``(channels, samples)`` in [-1, 1], and its sample rate.

    The rate is the file's unless ``sample_rate`` asks for another. The length is exact
    to the sample: MP3 encoder delay and padding are removed (FFmpeg reads them from the
    LAME tag), and resampled audio has ``round(n * new_rate / old_rate)`` samples.
    """
    chunks: list[AudioArray] = []
    rate = 0
    for chunk, chunk_rate in _decoded_chunks(path, sample_rate):
        chunks.append(_finish(chunk, mono))
        rate = chunk_rate
    return np.concatenate(chunks, axis=1), rate


class AudioWriter:
    """Writes a stem block by block, for engines that produce long stems in pieces.

    Use as a context manager: a clean exit finishes the file and renames it into place,
    an exception removes the partial file. Blocks are float ``(channels, n)`` arrays
    (a 1-D array for mono), clipped to [-1, 1].

    MP3 is encoded by LAME, which adds an encoder delay at the start and pads the last
    frame. FFmpeg records both in the LAME/Info tag of the first frame, and decoders that
    honour it (FFmpeg, so :func:`decode`; most players) drop them again, so our own MP3s
    decode to exactly the samples written.
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        fmt: OutputFormat,
        *,
        bit_depth: Literal[16, 24, 32] = 16,
        mp3_bitrate_kbps: int = 320,
        tags: Mapping[str, str] | None = None,
        cover: Cover | None = None,
    ) -> None:
        if sample_rate <= 0 or channels <= 0:
            raise ValueError("sample_rate and channels must be positive")
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.format = fmt
        self.frames_written = 0
        self._partial = path.with_name(f".{path.name}.part")
        self._closed = False
        self._sink: _Sink
        tags = dict(tags or {})
        if fmt is OutputFormat.MP3:
            self._sink = _Mp3Sink(
                self._partial, sample_rate, channels, mp3_bitrate_kbps, tags, cover
            )
        else:
            self._sink = _SndSink(self._partial, sample_rate, channels, fmt, bit_depth, tags, cover)

    def write(self, block: NDArray[Any]) -> None:
        if self._closed:
            raise ValueError("the writer is closed")
        data = np.asarray(block, dtype=np.float32)
        if data.ndim == 1:
            data = data[np.newaxis, :]
        if data.ndim != 2 or data.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, n) samples, got {block.shape}")
        if data.shape[1] == 0:
            return
        data = np.clip(data, -1.0, 1.0)
        self._sink.write(np.ascontiguousarray(data))
        self.frames_written += data.shape[1]

    def close(self) -> int:
        """Finish the file, move it to ``path``, and return its size in bytes."""
        if not self._closed:
            self._closed = True
            try:
                self._sink.close()
            except BaseException:
                self._partial.unlink(missing_ok=True)
                raise
            os.replace(self._partial, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        """Drop the partial file; ``path`` is left as it was."""
        if not self._closed:
            self._closed = True
            self._sink.abort()
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Sink:
    def write(self, block: AudioArray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


_SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}


class _SndSink(_Sink):
    """WAV and FLAC through libsndfile: exact, fast, no encoder delay."""

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        fmt: OutputFormat,
        bit_depth: int,
        tags: dict[str, str],
        cover: Cover | None,
    ) -> None:
        if bit_depth not in _SUBTYPES:
            raise ValueError("bit_depth must be 16, 24 or 32")
        # FLAC stores integers only; 24 bits is as fine as it gets.
        subtype = _SUBTYPES[min(bit_depth, 24) if fmt is OutputFormat.FLAC else bit_depth]
        self._path = path
        # WAV has no standard place for a picture
        self._cover = cover if fmt is OutputFormat.FLAC else None
        self._file = soundfile.SoundFile(
            str(path),
            "w",
            samplerate=sample_rate,
            channels=channels,
            subtype=subtype,
            format=fmt.value,
        )
        # libsndfile takes strings before the first samples (WAV INFO, FLAC comments)
        for key, value in tags.items():
            field = _SNDFILE_TAGS.get(key)
            if field is not None:
                with contextlib.suppress(RuntimeError):  # a format without that field
                    setattr(self._file, field, value)

    def write(self, block: AudioArray) -> None:
        self._file.write(block.T)

    def close(self) -> None:
        self._file.close()
        if self._cover is not None:
            add_flac_picture(self._path, self._cover)

    def abort(self) -> None:
        self._file.close()


class _Mp3Sink(_Sink):
    """MP3 through LAME in FFmpeg; FFmpeg writes the LAME tag with delay and padding.

    MP3 holds one or two channels at the rates in :data:`MP3_SAMPLE_RATES`. More channels
    (a 5.1 mix) are mixed down to stereo by FFmpeg's resampler rather than refused; a
    rate MP3 cannot hold is refused here, so engines decode at :func:`mp3_rate_for`.
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        bitrate_kbps: int,
        tags: dict[str, str],
        cover: Cover | None,
    ) -> None:
        if sample_rate not in MP3_SAMPLE_RATES:
            raise StemhubError(
                ErrorCode.INVALID_REQUEST,
                f"MP3 cannot hold audio at {sample_rate} Hz; ask for WAV or FLAC instead.",
            )
        if channels > len(_LAYOUTS):
            raise StemhubError(
                ErrorCode.INVALID_REQUEST,
                f"MP3 cannot hold {channels} channels; ask for WAV or FLAC instead.",
            )
        self._rate = sample_rate
        self._in_layout = _LAYOUTS[channels - 1]
        out_layout = "mono" if channels == 1 else "stereo"
        self._resampler: Any = None
        if out_layout != self._in_layout:
            self._resampler = av.AudioResampler(format="fltp", layout=out_layout)
        self._container: Any = av.open(str(path), "w", format="mp3")
        for key, value in tags.items():
            self._container.metadata[key] = value
        self._stream: Any = self._container.add_stream(
            "libmp3lame", rate=sample_rate, layout=out_layout
        )
        self._stream.bit_rate = bitrate_kbps * 1000
        self._stream.codec_context.format = "fltp"
        # LAME -q 5 instead of the library's default: measured a third less CPU per stem
        # (four 320 kbps MP3 stems otherwise cost more CPU than the separation itself);
        # at 320 kbps the bit budget, not the search effort, decides what is heard
        self._stream.codec_context.options = {"compression_level": str(MP3_LAME_QUALITY)}
        picture = None if cover is None else add_cover_stream(self._container, cover)
        self._container.start_encoding()
        if picture is not None and cover is not None:
            mux_cover(self._container, picture, cover)
        self._pts = 0

    def _encode(self, frame: Any) -> None:
        frames = [frame] if self._resampler is None else self._resampler.resample(frame)
        for part in frames:
            self._container.mux(self._stream.encode(part))

    def write(self, block: AudioArray) -> None:
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self._in_layout)
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._pts
        self._pts += block.shape[1]
        self._encode(frame)

    def close(self) -> None:
        if self._resampler is not None:
            self._encode(None)
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def abort(self) -> None:
        self._container.close()


_LAYOUTS = ("mono", "stereo", "2.1", "quad", "5.0", "5.1", "6.1", "7.1")
"""FFmpeg's layout for 1..8 channels, as decoders report them."""
_SNDFILE_TAGS = {
    "title": "title",
    "artist": "artist",
    "album": "album",
    "date": "date",
    "genre": "genre",
    "track": "tracknumber",
    "comment": "comment",
    "copyright": "copyright",
}
"""Our tag names -> libsndfile's string fields."""
_KEPT_TAGS = frozenset(
    {
        "title",
        "artist",
        "album",
        "album_artist",
        "date",
        "genre",
        "track",
        "composer",
        "comment",
        "copyright",
        "disc",
    }
)


def mp3_rate_for(sample_rate: int) -> int:
    """The rate MP3 stores ``sample_rate`` audio at: the same when it can, else the
    nearest rate above it, at most 48 kHz (96 kHz -> 48 kHz, 88.2 kHz -> 48 kHz)."""
    if sample_rate in MP3_SAMPLE_RATES:
        return sample_rate
    above = [rate for rate in sorted(MP3_SAMPLE_RATES) if rate >= sample_rate]
    return above[0] if above else max(MP3_SAMPLE_RATES)


def bit_depth_of(path: Path) -> Literal[16, 24, 32]:
    """The bit depth to keep when writing stems of ``path``: 24 for 24-bit PCM, 32 for
    32-bit or float PCM, else 16 (lossy input has no bit depth worth keeping)."""
    try:
        subtype = soundfile.info(str(path)).subtype
    except (RuntimeError, soundfile.LibsndfileError, OSError):
        return 16
    if subtype in ("PCM_24",):
        return 24
    if subtype in ("PCM_32", "FLOAT", "DOUBLE"):
        return 32
    return 16


def read_tags(path: Path) -> dict[str, str]:
    """The song's descriptive tags (title, artist, album, ...), from the container and
    the audio stream (Ogg and Opus keep them on the stream); empty when it has none."""
    tags: dict[str, str] = {}
    try:
        with av.open(str(path)) as container:
            found = dict(container.metadata)
            for stream in container.streams.audio[:1]:
                found.update(stream.metadata)
    except (av.FFmpegError, OSError, ValueError):
        return tags
    for key, value in found.items():
        name = key.lower()
        if name in _KEPT_TAGS and str(value).strip():
            tags[name] = str(value).strip()
    return tags


def tags_for_stem(tags: Mapping[str, str], stem: str) -> dict[str, str]:
    """The song's tags for one of its stems: the title says which stem it is."""
    out = dict(tags)
    if "title" in out:
        out["title"] = f"{out['title']} ({stem})"
    return out


def encode(
    path: Path,
    audio: NDArray[Any],
    sample_rate: int,
    fmt: OutputFormat,
    *,
    bit_depth: Literal[16, 24, 32] = 16,
    mp3_bitrate_kbps: int = 320,
    tags: Mapping[str, str] | None = None,
    cover: Cover | None = None,
) -> int:
    """Write ``audio`` (``(channels, samples)``, or 1-D for mono) and return bytes written.

    WAV is 16- or 24-bit PCM, or 32-bit float; FLAC is 16- or 24-bit (32 gives 24);
    MP3 is CBR at ``mp3_bitrate_kbps``. The sample rate and the length are kept exactly
    (for MP3 see :class:`AudioWriter` on encoder delay and padding).
    """
    data = np.asarray(audio)
    channels = 1 if data.ndim == 1 else data.shape[0]
    block = 1 << 18
    with AudioWriter(
        path,
        sample_rate,
        channels,
        fmt,
        bit_depth=bit_depth,
        mp3_bitrate_kbps=mp3_bitrate_kbps,
        tags=tags,
        cover=cover,
    ) as writer:
        total = data.shape[-1]
        for start in range(0, total, block):
            writer.write(data[..., start : start + block])
    return path.stat().st_size


__all__ = [
    "MP3_SAMPLE_RATES",
    "SUPPORTED_CONTAINERS",
    "AudioArray",
    "AudioWriter",
    "bit_depth_of",
    "check_limits",
    "decode",
    "decode_blocks",
    "encode",
    "format_duration",
    "mp3_rate_for",
    "probe",
    "read_tags",
    "sniff",
    "tags_for_stem",
]

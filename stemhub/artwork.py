"""Cover art: read from the song, carried over to its stems.

FFmpeg shows a picture embedded in an audio file (an ID3 ``APIC`` frame, a FLAC
``PICTURE`` block, an MP4 ``covr`` atom) as a video stream with the ``attached_pic``
disposition whose single packet is the image file itself. :func:`read_cover` takes that
packet; stems get it back where their format can hold a picture:

- MP3: a second stream of the same kind, muxed by FFmpeg as an ID3v2 ``APIC`` frame
  (:func:`add_cover_stream`, then :func:`mux_cover` once encoding started);
- FLAC: libsndfile writes no pictures, so :func:`add_flac_picture` inserts a
  ``PICTURE`` metadata block (type 6 in the FLAC format) after ``STREAMINFO``;
- WAV: no picture (RIFF has no standard place for one).

Only JPEG and PNG are carried, up to :data:`MAX_COVER_BYTES`; anything else is left out
rather than written into files other players may choke on.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

MAX_COVER_BYTES = 8 * 1024 * 1024
"""Larger pictures are not carried (a FLAC metadata block holds at most 16 MiB)."""

_CODECS = {"mjpeg": "image/jpeg", "png": "image/png"}
_ENCODER_PIXELS = {"mjpeg": "yuvj420p", "png": "rgb24"}
_FRONT_COVER = 3
"""The picture type of a front cover, in ID3v2 APIC and FLAC PICTURE alike."""
_FLAC_PICTURE = 6
_FLAC_MAGIC = b"fLaC"


@dataclass(frozen=True)
class Cover:
    data: bytes
    codec: str
    """FFmpeg's codec name of the image: ``mjpeg`` or ``png``."""
    width: int = 0
    height: int = 0

    @property
    def mime(self) -> str:
        return _CODECS[self.codec]


def read_cover(path: Path) -> Cover | None:
    """The song's embedded front picture (JPEG or PNG), or None."""
    try:
        with av.open(str(path)) as container:
            for stream in container.streams.video:
                attached = stream.disposition & av.stream.Disposition.attached_pic
                name = stream.codec_context.name
                if not attached or name not in _CODECS:
                    continue
                for packet in container.demux(stream):
                    data = bytes(packet)
                    if 0 < len(data) <= MAX_COVER_BYTES:
                        context = stream.codec_context
                        return Cover(data, name, int(context.width), int(context.height))
                    break
    except (av.FFmpegError, OSError, ValueError):
        return None
    return None


def add_cover_stream(container: Any, cover: Cover) -> Any:
    """Declare the picture's stream in an output container, before encoding starts."""
    stream = container.add_stream(cover.codec)
    # the encoder is opened with the container but never used: the packet is the file
    stream.width = max(cover.width, 16)
    stream.height = max(cover.height, 16)
    stream.pix_fmt = _ENCODER_PIXELS[cover.codec]
    stream.disposition = av.stream.Disposition.attached_pic
    stream.metadata["comment"] = "Cover (front)"
    return stream


def mux_cover(container: Any, stream: Any, cover: Cover) -> None:
    """Write the picture once; FFmpeg's MP3 muxer holds audio until it has it."""
    packet = av.Packet(cover.data)
    packet.stream = stream
    packet.pts = packet.dts = 0
    container.mux(packet)


def flac_picture_block(cover: Cover, *, last: bool) -> bytes:
    """A FLAC ``PICTURE`` metadata block: header, then the fields in the format's order."""
    mime = cover.mime.encode("ascii")
    body = b"".join(
        (
            struct.pack(">II", _FRONT_COVER, len(mime)),
            mime,
            struct.pack(">I", 0),  # no description
            struct.pack(">IIII", cover.width, cover.height, 0, 0),  # depth, colours unknown
            struct.pack(">I", len(cover.data)),
            cover.data,
        )
    )
    header = ((0x80 if last else 0) | _FLAC_PICTURE).to_bytes(1, "big")
    return header + len(body).to_bytes(3, "big") + body


def add_flac_picture(path: Path, cover: Cover) -> None:
    """Insert ``cover`` after the STREAMINFO block of the FLAC file at ``path``."""
    with path.open("rb") as source:
        if source.read(4) != _FLAC_MAGIC:
            raise ValueError(f"{path.name} is not a FLAC file")
        header = source.read(4)
        if len(header) != 4 or header[0] & 0x7F != 0:
            raise ValueError(f"{path.name} does not start with STREAMINFO")
        was_last = bool(header[0] & 0x80)
        streaminfo = source.read(int.from_bytes(header[1:], "big"))
        staged = path.with_name(path.name + ".cover")
        try:
            with staged.open("wb") as target:
                target.write(_FLAC_MAGIC)
                target.write(bytes([header[0] & 0x7F]) + header[1:])
                target.write(streaminfo)
                target.write(flac_picture_block(cover, last=was_last))
                shutil.copyfileobj(source, target, 1 << 20)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
    staged.replace(path)


__all__ = [
    "MAX_COVER_BYTES",
    "Cover",
    "add_cover_stream",
    "add_flac_picture",
    "flac_picture_block",
    "mux_cover",
    "read_cover",
]

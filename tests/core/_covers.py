"""Songs with embedded cover art, written by FFmpeg's own muxer (not by the code under test)."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

RATE = 44100


def png(width: int = 8, height: int = 6) -> bytes:
    """A real PNG file (red pixels), built from the format's chunks."""
    rows = b"".join(b"\x00" + bytes([200, 30, 30] * width) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """A real JPEG file, encoded by FFmpeg's MJPEG encoder."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 16, 16, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 90, np.uint8), format="rgb24")
    frame = frame.reformat(format="yuvj420p")
    return b"".join(bytes(packet) for packet in codec.encode(frame) + codec.encode(None))


def song_with_cover(path: Path, fmt: str, codec: str, picture: bytes) -> Path:
    """A one-second song whose container carries ``picture`` as its attached picture,
    written by FFmpeg's own muxer (not by the code under test)."""
    encoder = "libmp3lame" if fmt == "mp3" else "flac"
    with av.open(str(path), "w", format=fmt) as container:
        container.metadata["title"] = "Night Drive"
        audio: Any = container.add_stream(encoder, rate=RATE, layout="stereo")
        image: Any = container.add_stream(codec)
        image.width, image.height = 16, 16
        image.pix_fmt = "yuvj420p" if codec == "mjpeg" else "rgb24"
        image.disposition = av.stream.Disposition.attached_pic
        container.start_encoding()
        packet = av.Packet(picture)
        packet.stream, packet.pts, packet.dts = image, 0, 0
        container.mux(packet)
        sample_format = "fltp" if fmt == "mp3" else "s16"
        tone = np.sin(np.arange(RATE) * 2 * np.pi * 220 / RATE) * 0.3
        samples = np.stack([tone, tone]).astype(np.float32)
        if fmt == "flac":
            samples = (samples.T.reshape(1, -1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
        for part in (frame, None):
            for out in audio.encode(part):
                container.mux(out)
    return path


def attached(path: Path) -> tuple[str, bytes] | None:
    """The attached picture of a file as FFmpeg reads it: (codec, bytes)."""
    with av.open(str(path)) as container:
        for stream in container.streams.video:
            if stream.disposition & av.stream.Disposition.attached_pic:
                for packet in container.demux(stream):
                    return stream.codec_context.name, bytes(packet)
    return None

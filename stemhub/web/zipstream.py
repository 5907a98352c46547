"""All of a job's stems as one ZIP, written while it is sent.

Stored, not compressed (audio barely shrinks; the CPU is better spent separating), so
six long WAV stems never sit in memory or in a temporary file. Starlette runs the
generator in its thread pool, so file reads never block the event loop.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from starlette.responses import StreamingResponse

_CHUNK = 1024 * 1024


class _Sink:
    """A write-only stream for zipfile; the generator drains it as it goes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def zip_chunks(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """The bytes of a ZIP of ``(name in the archive, file)`` pairs, a chunk at a time."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[call-overload]
        for name, path in files:
            big = path.stat().st_size > 2**31
            with archive.open(name, mode="w", force_zip64=big) as dest, path.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    dest.write(chunk)
                    yield sink.take()
    yield sink.take()


def attachment(filename: str) -> str:
    """A Content-Disposition value that survives non-ASCII song names."""
    if filename.isascii() and '"' not in filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=utf-8''{quote(filename)}"


def zip_response(files: list[tuple[str, Path]], filename: str) -> StreamingResponse:
    return StreamingResponse(
        zip_chunks(files),
        media_type="application/zip",
        headers={"Content-Disposition": attachment(filename)},
    )


__all__ = ["attachment", "zip_chunks", "zip_response"]

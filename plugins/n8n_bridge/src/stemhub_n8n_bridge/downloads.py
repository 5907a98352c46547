"""Stems going out: one stem as a file download, or all of them as a streamed ZIP.

The ZIP is written while it is sent (stored, not compressed: audio barely shrinks and
the CPU is better spent separating), so a job with six long WAV stems never sits in
memory or in a temporary file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import Job, JobStatus
from stemhub.outputs import OutputStore

MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac"}
_CHUNK = 1024 * 1024


def _require_stems(job: Job) -> None:
    if job.status is not JobStatus.COMPLETED:
        if job.finished:
            raise StemhubError(
                ErrorCode.CONFLICT,
                f"Job {job.id} ended {job.status.value.lower()} and has no stems.",
            )
        raise StemhubError(ErrorCode.CONFLICT, f"Job {job.id} is not finished yet.")


def _base_name(job: Job) -> str:
    name = Path(job.request.source.display_name).stem.strip() or "audio"
    safe = "".join(ch if ch.isprintable() and ch not in '"\\/' else "_" for ch in name)
    return safe[:120]


def stem_download(outputs: OutputStore, job: Job, stem: str) -> Response:
    _require_stems(job)
    output = job.outputs.get(stem)
    if output is None:
        known = ", ".join(job.outputs) or "none"
        raise StemhubError(ErrorCode.NOT_FOUND, f"Job {job.id} has no {stem} stem ({known}).")
    path = outputs.path_of(job, output)
    if path is not None and path.is_file():
        ext = output.format.extension
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(ext, "application/octet-stream"),
            filename=f"{_base_name(job)} - {stem}.{ext}",
        )
    if output.url:
        return RedirectResponse(output.url, status_code=307)
    raise StemhubError(ErrorCode.NOT_FOUND, f"The {stem} stem of job {job.id} is no longer kept.")


class _Sink:
    """A write-only stream zipfile writes into; the generator drains it as it goes."""

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


def _zip_chunks(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[call-overload]
        for name, path in files:
            big = path.stat().st_size > 2**31
            with archive.open(name, mode="w", force_zip64=big) as dest, path.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    dest.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


def _attachment(filename: str) -> str:
    if filename.isascii():
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=utf-8''{quote(filename)}"


def stems_zip(outputs: OutputStore, job: Job) -> Response:
    _require_stems(job)
    base = _base_name(job)
    files: list[tuple[str, Path]] = []
    for stem, output in job.outputs.items():
        path = outputs.path_of(job, output)
        if path is not None and path.is_file():
            files.append((f"{base} - {stem}.{output.format.extension}", path))
    if not files:
        raise StemhubError(
            ErrorCode.NOT_FOUND,
            f"The stems of job {job.id} are not kept on this hub; use their links instead.",
        )
    return StreamingResponse(
        _zip_chunks(files),
        media_type="application/zip",
        headers={"Content-Disposition": _attachment(f"{base} - stems.zip")},
    )


__all__ = ["MEDIA_TYPES", "stem_download", "stems_zip"]

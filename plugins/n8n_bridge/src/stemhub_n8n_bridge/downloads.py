"""Stems going out: one stem as a file download, or all of them as a streamed ZIP.

The ZIP is written while it is sent (stored, not compressed: audio barely shrinks and
the CPU is better spent separating), so a job with six long WAV stems never sits in
memory or in a temporary file.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, RedirectResponse, Response

from stemhub import ErrorCode, Job, JobStatus, PluginHub, StemhubError, zip_response

MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac"}


def _require_stems(job: Job) -> None:
    if job.status is JobStatus.EXPIRED:
        raise StemhubError(
            ErrorCode.JOB_EXPIRED,
            f"The stems of job {job.id} were deleted after the retention period.",
        )
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


def stem_download(hub: PluginHub, job: Job, stem: str) -> Response:
    _require_stems(job)
    output = job.outputs.get(stem)
    if output is None:
        known = ", ".join(job.outputs) or "none"
        raise StemhubError(ErrorCode.NOT_FOUND, f"Job {job.id} has no {stem} stem ({known}).")
    path = hub.output_path(job, output)
    if path is not None and path.is_file():
        ext = output.format.extension
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(ext, "application/octet-stream"),
            filename=f"{_base_name(job)} - {stem}.{ext}",
        )
    if output.url:
        return RedirectResponse(output.url, status_code=307)
    raise StemhubError(
        ErrorCode.JOB_EXPIRED,
        f"The {stem} stem of job {job.id} was deleted after the retention period.",
    )


def stems_zip(hub: PluginHub, job: Job) -> Response:
    _require_stems(job)
    base = _base_name(job)
    files: list[tuple[str, Path]] = []
    for stem, output in job.outputs.items():
        path = hub.output_path(job, output)
        if path is not None and path.is_file():
            files.append((f"{base} - {stem}.{output.format.extension}", path))
    if not files:
        if any(output.url for output in job.outputs.values()):
            raise StemhubError(
                ErrorCode.NOT_FOUND,
                f"The stems of job {job.id} are not kept on this hub; use their links instead.",
            )
        raise StemhubError(
            ErrorCode.JOB_EXPIRED,
            f"The stems of job {job.id} were deleted after the retention period.",
        )
    return zip_response(files, f"{base} - stems.zip")


__all__ = ["MEDIA_TYPES", "stem_download", "stems_zip"]

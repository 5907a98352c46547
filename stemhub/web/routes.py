"""HTTP routes of the result page: the page, its ZIP of all stems, its assets.

A bad link never shows a stack trace or the API's JSON envelope: a person clicked it,
so they get a short HTML page with the right status (403 forged or swapped, 410
expired, 404 gone).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import JobStatus
from stemhub.web import waveforms
from stemhub.web.assets import ASSETS_PREFIX, serve_asset
from stemhub.web.links import PAGE_PREFIX, base_path, check_page, file_path, page_query
from stemhub.web.page import (
    PageView,
    StemView,
    render_error,
    render_pending,
    render_result,
    song_title,
)
from stemhub.web.zipstream import zip_response

if TYPE_CHECKING:
    from stemhub.hub import Hub
    from stemhub.models import Job

PAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_ERROR_TITLES = {
    ErrorCode.FORBIDDEN: "This link is not valid",
    ErrorCode.JOB_EXPIRED: "This link has expired",
    ErrorCode.NOT_FOUND: "Nothing here",
}


def page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": PAGE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def html_page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=page_headers())


_ERROR_ADVICE = {
    ErrorCode.FORBIDDEN: "Check that the whole link was copied, or ask for the split again.",
    ErrorCode.JOB_EXPIRED: "Links to a split work for a limited time: ask for it again "
    "where you asked the first time.",
}


def error_page(error: StemhubError, prefix: str) -> HTMLResponse:
    title = _ERROR_TITLES.get(error.code, "Something went wrong")
    message = _ERROR_ADVICE.get(error.code, error.message)
    return html_page(render_error(title, message, prefix), error.http_status)


async def _authorize(hub: Hub, request: Request) -> tuple[Job, int] | HTMLResponse:
    """The job a page link opens and the link's expiry, or the page that refuses it."""
    try:
        expires = check_page(
            hub.outputs,
            request.path_params["job_id"],
            request.query_params.get("exp", ""),
            request.query_params.get("sig", ""),
        )
        job = await hub.get_job(request.path_params["job_id"])
        if job is None:
            raise StemhubError(ErrorCode.NOT_FOUND, "This split is no longer kept.")
    except StemhubError as error:
        return error_page(error, base_path(hub.public_url or ""))
    return job, expires


async def _view(hub: Hub, job: Job, expires: int) -> PageView:
    prefix = base_path(hub.public_url or "")
    files = waveforms.stem_files(hub, job)
    stems: list[StemView] = []
    for stem, output in job.outputs.items():
        local = files.get(stem)
        src = file_path(hub.outputs, job.id, local.name, expires) if local else None
        stems.append(
            StemView(
                name=stem,
                color=waveforms.stem_color(stem),
                format=output.format.value,
                size_bytes=output.size_bytes or (local.stat().st_size if local else None),
                src=src,
                href=src or output.url,
            )
        )
    peaks = await asyncio.to_thread(waveforms.read_peaks, hub.outputs.job_dir(job.id))
    query = page_query(hub.outputs, job.id, expires)
    return PageView(
        job=job,
        stems=stems,
        peaks=peaks,
        zip_href=f"{prefix}{PAGE_PREFIX}/{job.id}/stems.zip?{query}" if files else None,
        expires_at=datetime.fromtimestamp(expires, UTC),
        prefix=prefix,
    )


def result_routes(hub: Hub) -> list[BaseRoute]:
    async def page(request: Request) -> Response:
        allowed = await _authorize(hub, request)
        if isinstance(allowed, Response):
            return allowed
        job, expires = allowed
        if job.status is not JobStatus.COMPLETED:
            return html_page(render_pending(job, base_path(hub.public_url or "")))
        return html_page(render_result(await _view(hub, job, expires)))

    async def stems_zip(request: Request) -> Response:
        allowed = await _authorize(hub, request)
        if isinstance(allowed, Response):
            return allowed
        job, _expires = allowed
        files = waveforms.stem_files(hub, job)
        if not files:
            error = StemhubError(ErrorCode.NOT_FOUND, "The stems of this split are not kept here.")
            return error_page(error, base_path(hub.public_url or ""))
        base = song_title(job)
        entries = [
            (f"{base} - {stem}.{job.outputs[stem].format.extension}", path)
            for stem, path in files.items()
        ]
        return zip_response(entries, f"{base} - stems.zip")

    return [
        Route(PAGE_PREFIX + "/{job_id}", page, methods=["GET", "HEAD"]),
        Route(PAGE_PREFIX + "/{job_id}/stems.zip", stems_zip, methods=["GET"]),
        Route(ASSETS_PREFIX + "/{name}", serve_asset, methods=["GET", "HEAD"]),
    ]


__all__ = ["PAGE_CSP", "error_page", "html_page", "page_headers", "result_routes"]

"""The result page: a player per job behind a signed link, waveforms, the operator page.

Frontends reach it through the hub (:class:`stemhub.PluginHub`):
``hub.result_page_url(job)`` (the page's signed URL, or None without a public URL),
``hub.waveform_png(job)`` (the PNG of every stem's waveform, one row each, made when the
job completed; None for remote-only stems) and ``hub.waveform_png_url(job)`` (a signed
link to that PNG, for image blocks that take a URL). The functions here are what the hub
calls, given its output store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stemhub.outputs import OutputStore


def result_page_url(outputs: OutputStore, job_id: str, *, ttl_s: int | None = None) -> str | None:
    """The signed link to a job's result page (expiring like its stem links)."""
    from stemhub.web.links import page_link

    if outputs.public_url is None:
        return None
    return page_link(outputs, job_id, ttl_s=ttl_s)[0]


def waveform_png(outputs: OutputStore, job_id: str) -> Path | None:
    """The waveform picture of a job's stems, if the hub made one."""
    from stemhub.web.waveforms import PNG_FILE

    path = outputs.job_dir(job_id) / PNG_FILE
    return path if path.is_file() else None


def waveform_png_url(outputs: OutputStore, job_id: str, *, ttl_s: int | None = None) -> str | None:
    """A signed, expiring link to :func:`waveform_png`, served like the stems."""
    path = waveform_png(outputs, job_id)
    if outputs.public_url is None or path is None:
        return None
    return outputs.link(job_id, path.name, ttl_s=ttl_s)[0]


__all__ = ["result_page_url", "waveform_png", "waveform_png_url"]

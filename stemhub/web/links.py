"""Signed, expiring links to a job's result page, made with the stems' own signing.

A page link is ``/results/<job id>?exp=<unix time>&sig=<signature>``: the
:class:`~stemhub.outputs.OutputStore` signature of the job id and the empty file name
(which no stem can have, so a page signature never opens a file and a file signature
never opens a page). The same pair unlocks the page's zip of all stems; the stems the
page plays are linked with their own file signatures under the same expiry.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from stemhub.errors import ErrorCode, StemhubError
from stemhub.outputs import FILES_PREFIX

if TYPE_CHECKING:
    from stemhub.outputs import OutputStore

PAGE_PREFIX = "/results"
_PAGE_NAME = ""


def base_path(public_url: str) -> str:
    """The path part of the hub's public URL (a hub served under ``/stemhub``)."""
    return urlsplit(public_url).path.rstrip("/")


def page_query(outputs: OutputStore, job_id: str, expires: int) -> str:
    return f"exp={expires}&sig={outputs.sign(job_id, _PAGE_NAME, expires)}"


def page_link(
    outputs: OutputStore, job_id: str, *, ttl_s: int | None = None
) -> tuple[str, datetime]:
    """The absolute page URL and when it expires; needs the hub's public URL."""
    if outputs.public_url is None:
        raise StemhubError(
            ErrorCode.CONFIG_MISSING,
            "Result pages are not available on this hub.",
            operator_message="Set STEMHUB_PUBLIC_URL so the hub can hand out result pages.",
        )
    expires = int(time.time()) + (ttl_s or outputs.link_ttl_s)
    url = f"{outputs.public_url}{PAGE_PREFIX}/{job_id}?{page_query(outputs, job_id, expires)}"
    return url, datetime.fromtimestamp(expires, UTC)


def file_path(outputs: OutputStore, job_id: str, filename: str, expires: int) -> str:
    """A signed path (no host) to one of the job's files, expiring at ``expires``."""
    sig = outputs.sign(job_id, filename, expires)
    prefix = base_path(outputs.public_url or "")
    return f"{prefix}{FILES_PREFIX}/{job_id}/{quote(filename)}?exp={expires}&sig={sig}"


def check_page(outputs: OutputStore, job_id: str, expires: str, signature: str) -> int:
    """The expiry of a valid page link; FORBIDDEN when forged, JOB_EXPIRED when late."""
    expires_at = outputs.check(job_id, _PAGE_NAME, expires, signature)
    if not job_id.isalnum():
        raise StemhubError(ErrorCode.NOT_FOUND, "No such job.")
    return expires_at


__all__ = ["PAGE_PREFIX", "base_path", "check_page", "file_path", "page_link", "page_query"]

"""What the two API dialects do the same way, written once.

``/api/v1`` and ``/v1`` differ in field names, status words and error codes, not in what
they do: both find a key's own job (through the recent-reads cache for ``GET``), page
through a key's jobs, bind an ``Idempotency-Key`` to its request, check callback and
source URLs, validate webhook events and remove subscriptions, and link a finished job
to its result page. Each dialect module keeps its shapes and calls these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from stemhub import ErrorCode, JobStatus, Source, SourceKind, StemhubError, stemsplit_wire
from stemhub_n8n_bridge._http import invalid, query_int
from stemhub_n8n_bridge.keys import ApiError
from stemhub_n8n_bridge.settings import PLATFORM

if TYPE_CHECKING:
    from starlette.requests import Request

    from stemhub import Job
    from stemhub_n8n_bridge.frontend import BridgeFrontend
    from stemhub_n8n_bridge.keys import ApiKey
    from stemhub_n8n_bridge.reads import Render
    from stemhub_n8n_bridge.wire import Links

FINGERPRINT = "request_fingerprint"
"""The key in a job's origin context that holds its request's fingerprint."""
MAX_PAGE = 100
_YOUTUBE_HOSTS = ("youtube.com", "youtu.be")

Missing = Callable[[str], StemhubError]
"""The dialect's 404 for a job id."""


def idempotency_key(key: ApiKey, header: str | None) -> str | None:
    """The core's (global) idempotency key for one API key's ``Idempotency-Key``."""
    if not header:
        return None
    if len(header) > 255:
        raise invalid("Idempotency-Key is longer than 255 characters.")
    digest = hashlib.sha256(header.encode()).hexdigest()[:40]
    return f"{PLATFORM}:{key.id}:{digest}"


def fingerprint(*parts: object) -> str:
    """What an ``Idempotency-Key`` is bound to: a hash of the request's parameters."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def replay(bridge: BridgeFrontend, idem: str | None, print_: str) -> Job | None:
    """The job an ``Idempotency-Key`` already started, or ``None``; 409 for another body.

    As Stripe does: the same key with the same parameters returns the first result; the
    same key with different parameters is a client bug, answered 409 instead of
    silently returning a job the client did not ask for.
    """
    if idem is None:
        return None
    existing = await bridge.hub.job_by_idempotency_key(idem)
    if existing is None:
        return None
    if existing.origin.context.get(FINGERPRINT, print_) != print_:
        raise ApiError(
            ErrorCode.CONFLICT,
            "IDEMPOTENCY_KEY_REUSED",
            "This Idempotency-Key was already used with a different request; "
            "send a new key for a new job.",
        )
    return existing


def check_callback(bridge: BridgeFrontend, url: str | None, field: str) -> str | None:
    """``url`` if the outbox may post to it; the refusal names the request's field."""
    if url is None:
        return None
    try:
        bridge.outbox.check_target(url)
    except StemhubError as error:
        raise StemhubError(error.code, f"{field}: {error.message}") from None
    return url


def check_events(events: list[str]) -> list[str]:
    """The subscription's events, each once; 400 for an empty list or an unknown event."""
    known = stemsplit_wire.WEBHOOK_EVENTS
    if not events or set(events) - set(known):
        raise invalid(f"events must be a non-empty list of {', '.join(known)}.")
    return list(dict.fromkeys(events))


async def unsubscribe(bridge: BridgeFrontend, key: ApiKey, sub_id: str, what: str) -> Response:
    if not await bridge.outbox.unsubscribe(sub_id, key.id):
        raise StemhubError(ErrorCode.NOT_FOUND, f"There is no such {what}.")
    return JSONResponse({"deleted": True})


def when(value: float | None) -> datetime | None:
    """A stored epoch time as the aware datetime the wire models write."""
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def source_for_url(bridge: BridgeFrontend, url: str, file_name: str | None) -> Source:
    bridge.hub.check_outbound_url(url)
    host = url.split("/", 3)[2].lower() if url.count("/") >= 2 else ""
    kind = SourceKind.YOUTUBE if host.endswith(_YOUTUBE_HOSTS) else SourceKind.URL
    return Source(kind=kind, url=url, filename=file_name)


def page_url(bridge: BridgeFrontend, job: Job, links: Links) -> str | None:
    """The job's result page, for a completed job whose stems are still kept."""
    if job.status is not JobStatus.COMPLETED or not links:
        return None
    return bridge.hub.result_page_url(job)


async def load_job(bridge: BridgeFrontend, job_id: str) -> Job | None:
    """The job, or ``None`` for an unknown id or one that cannot be a job id at all."""
    return await bridge.hub.get_job(job_id) if job_id.isascii() and job_id.isalnum() else None


async def owned_job(bridge: BridgeFrontend, key: ApiKey, job_id: str, missing: Missing) -> Job:
    """The key's own job; another key's job is answered exactly like an unknown one."""
    job = await load_job(bridge, job_id)
    if job is None or job.origin.api_key_id != key.id:
        raise missing(job_id)
    return job


async def read_job(
    bridge: BridgeFrontend,
    dialect: str,
    request: Request,
    key: ApiKey,
    render: Render,
    missing: Missing,
) -> Response:
    """``GET .../jobs/{job_id}`` in ``dialect``, through the recent-reads cache."""
    job_id = request.path_params["job_id"]

    async def load(wanted: str) -> Job | None:
        return await load_job(bridge, wanted)

    found = await bridge.reads.get(dialect, job_id, load, render)
    if found is None or found[0].origin.api_key_id != key.id:
        raise missing(job_id)
    return Response(found[1], media_type="application/json")


def status_filter(
    request: Request, parse: Callable[[str], list[JobStatus]], words: str
) -> list[JobStatus] | None:
    """The core statuses ``?status=`` asks for (``None``: all); ``words`` name the valid ones."""
    wanted = request.query_params.get("status")
    if not wanted:
        return None
    try:
        return parse(wanted.strip().upper())
    except ValueError:
        raise invalid(f"status must be {words}.") from None


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.jobs) < self.total


async def page_of_jobs(
    bridge: BridgeFrontend, request: Request, key: ApiKey, statuses: list[JobStatus] | None
) -> JobPage:
    """One page (``?limit=&offset=``) of the key's jobs, newest first, and the total."""
    limit = query_int(request, "limit", 20, 1, MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, 10**9)
    hub = bridge.hub
    jobs = await hub.list_jobs(statuses=statuses, api_key_id=key.id, limit=limit, offset=offset)
    total = await hub.count_jobs(statuses=statuses, api_key_id=key.id)
    return JobPage(jobs, total, limit, offset)


__all__ = [
    "FINGERPRINT",
    "JobPage",
    "Missing",
    "check_callback",
    "check_events",
    "fingerprint",
    "idempotency_key",
    "load_job",
    "owned_job",
    "page_of_jobs",
    "page_url",
    "read_job",
    "replay",
    "source_for_url",
    "status_filter",
    "unsubscribe",
    "when",
]

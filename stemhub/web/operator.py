"""The operator page: recent jobs at a glance, behind ``STEMHUB_OPERATOR_TOKEN``.

A browser signs in once with the token (a form, so it never sits in a URL or a
history); the hub answers with a session cookie (HttpOnly, SameSite=Strict, scoped
to ``/operator``) that holds an expiry and an HMAC under a key derived from the
hub's key and the token, so changing the token ends every session. Scripts may send
``Authorization: Bearer <token>`` instead. Tokens are compared in constant time and
never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from stemhub.models import Job, JobStatus
from stemhub.web.links import base_path
from stemhub.web.page import NONE, clock, document, when
from stemhub.web.routes import html_page

if TYPE_CHECKING:
    from stemhub.hub import Hub

OPERATOR_PREFIX = "/operator"
COOKIE = "stemhub_operator"
SESSION_S = 12 * 3600
RECENT = 100
_MAX_FORM_BYTES = 4096


def _token(hub: Hub) -> bytes | None:
    secret = hub.settings.operator_token
    if secret is None or not secret.get_secret_value():
        return None
    return secret.get_secret_value().encode()


def _session_mac(hub: Hub, token: bytes, expires: int) -> str:
    key = hub.derive_key("operator-session")
    message = f"{expires}:".encode() + hashlib.sha256(token).digest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def new_session(hub: Hub, token: bytes) -> str:
    expires = int(time.time()) + SESSION_S
    return f"{expires}.{_session_mac(hub, token, expires)}"


def is_operator(hub: Hub, request: Request) -> bool:
    """A valid bearer token or session cookie."""
    token = _token(hub)
    if token is None:
        return False
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), token)
    expires_text, _, mac = request.cookies.get(COOKIE, "").partition(".")
    if not expires_text.isdigit() or int(expires_text) < time.time():
        return False
    return hmac.compare_digest(mac.encode(), _session_mac(hub, token, int(expires_text)).encode())


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _duration(seconds: float | None) -> str:
    """``"0.4 s"``, ``"12 s"``, ``"3:58"``: short waits stay readable."""
    if seconds is None:
        return NONE
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 60 else clock(seconds)


def _row(job: Job) -> str:
    wait = _seconds(job.created_at, job.started_at)
    run = _seconds(job.started_at, job.finished_at)
    problem = ""
    if job.error_code:
        problem = f"<b>{escape(job.error_code)}</b> {escape(job.error_message or '')}"
    delivery_error = job.delivery.get("error")
    if job.undelivered:
        reason = delivery_error.get("code", "") if isinstance(delivery_error, dict) else ""
        problem += f' <span class="flag">undelivered {escape(str(reason))}</span>'
    status = job.status.value
    return (
        f'<tr class="status-{status.lower()}">'
        f'<td><code title="{escape(job.id)}">{escape(job.id[:8])}</code></td>'
        f"<td>{escape(when(job.created_at))}</td>"
        f'<td><span class="badge">{escape(status)}</span></td>'
        f"<td>{escape(job.stage.value)}</td>"
        f"<td>{escape(job.backend or NONE)}</td>"
        f"<td>{escape(job.origin.platform)}</td>"
        f"<td>{escape(job.request.source.display_name)}</td>"
        f"<td>{_duration(wait)}</td>"
        f"<td>{_duration(run)}</td>"
        f"<td>{problem}</td>"
        "</tr>"
    )


def render_jobs(jobs: list[Job], counts: dict[str, int], prefix: str) -> str:
    undelivered = sum(1 for job in jobs if job.undelivered)
    tiles = "".join(
        f'<div class="fact"><dt>{escape(status.value.lower())}</dt>'
        f"<dd>{counts.get(status.value, 0)}</dd></div>"
        for status in JobStatus
    )
    tiles += f'<div class="fact"><dt>undelivered (recent)</dt><dd>{undelivered}</dd></div>'
    rows = "\n".join(_row(job) for job in jobs) or '<tr><td colspan="10">No jobs yet.</td></tr>'
    body = f"""<main class="page operator">
<p class="eyebrow">stemhub operator</p>
<h1>Recent jobs</h1>
<dl class="facts">{tiles}</dl>
<div class="table-wrap">
<table>
<caption>The {len(jobs)} most recent jobs, newest first</caption>
<thead><tr><th scope="col">Job</th><th scope="col">Created</th><th scope="col">Status</th>
<th scope="col">Stage</th><th scope="col">Backend</th><th scope="col">From</th>
<th scope="col">Song</th><th scope="col">Waited</th><th scope="col">Ran</th>
<th scope="col">Problem</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</div>
</main>"""
    return document("stemhub operator", prefix, body)


def render_login(prefix: str, *, wrong: bool) -> str:
    hint = '<p class="error" role="alert">That token is not right.</p>' if wrong else ""
    body = f"""<main class="page notice">
<p class="eyebrow">stemhub operator</p>
<h1>Sign in</h1>
{hint}
<form method="post" action="{escape(prefix + OPERATOR_PREFIX)}/login" class="login">
<label for="token">Operator token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>"""
    return document("stemhub operator · sign in", prefix, body)


def operator_routes(hub: Hub) -> list[BaseRoute]:
    prefix = base_path(hub.public_url or "")
    secure = (hub.public_url or "").startswith("https://")

    async def jobs_page(request: Request) -> Response:
        if not is_operator(hub, request):
            return html_page(render_login(prefix, wrong=False), 401)
        jobs = await hub.list_jobs(limit=RECENT)
        counts = await hub.count_by_status()
        return html_page(render_jobs(jobs, counts, prefix))

    async def login(request: Request) -> Response:
        token = _token(hub)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM_BYTES:
                return html_page(render_login(prefix, wrong=True), 413)
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if token is None or not hmac.compare_digest(given.encode(), token):
            return html_page(render_login(prefix, wrong=True), 401)
        response = RedirectResponse(prefix + OPERATOR_PREFIX, status_code=303)
        response.set_cookie(
            COOKIE,
            new_session(hub, token),
            max_age=SESSION_S,
            path=prefix + OPERATOR_PREFIX,
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return response

    return [
        Route(OPERATOR_PREFIX, jobs_page, methods=["GET"]),
        Route(OPERATOR_PREFIX + "/login", login, methods=["POST"]),
    ]


__all__ = ["COOKIE", "OPERATOR_PREFIX", "is_operator", "new_session", "operator_routes"]

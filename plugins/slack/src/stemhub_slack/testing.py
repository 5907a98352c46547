"""A local stand-in for Slack, for tests and benchmarks: no Slack workspace needed.

- :class:`MockSlack`: the Web API (``AsyncWebClient(base_url=...)`` points here), the
  upload URLs of ``files.getUploadURLExternal`` and ``response_url`` endpoints. It records
  every call and answers with the shapes Slack documents (``{"ok": true, ...}``, errors as
  ``{"ok": false, "error": "not_in_channel"}``, 429 with ``Retry-After``).
- :class:`FileHost`: a private file server like ``files.slack.com``: the audio for the
  right ``Authorization: Bearer`` token, Slack's sign-in page (HTML, status 200) without it.
- Payload builders for what Slack sends: slash commands (form-encoded), shortcuts, block
  actions and view submissions (``payload=<json>``), events (JSON), and :func:`signed`
  headers (``X-Slack-Signature: v0=hmac_sha256("v0:{ts}:{body}")``).

Same approach as slack-bolt's own tests (a mock Web API server on loopback), written
for stemhub.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import WSMsgType, web
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from stemhub.http import serve_asgi

TEAM_ID = "T0STEMHUB"
BOT_USER_ID = "U0STEMBOT"
BOT_ID = "B0STEMBOT"
APP_ID = "A0STEMHUB"
TEST_BOT_TOKEN = "xoxb-test-token"  # noqa: S105 - a fake token for the mock

LOGIN_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><title>Slack</title></head>'
    b'<body><form action="/signin">Sign in to your workspace</form></body></html>'
)


@dataclass
class ApiCall:
    """One Web API call as the mock saw it."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {}
    return dict(parse_qsl(raw.decode()))


serve_app = serve_asgi


class MockSlack:
    """The Slack Web API on loopback: records calls, answers like Slack.

    ``fail(method, error)`` makes the next call of ``method`` fail with that Slack error
    (``"ratelimited"`` answers 429 with ``Retry-After``); ``hold(method, after=n)`` makes
    calls after the first ``n`` wait until ``release(method)``.
    """

    def __init__(self, *, token: str = TEST_BOT_TOKEN) -> None:
        self.token = token
        self.url = ""
        self.calls: list[ApiCall] = []
        self.uploads: dict[str, bytes] = {}
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.usergroups: list[dict[str, Any]] = []
        self.socket_url: str | None = None
        self._failures: dict[str, list[str]] = {}
        self._holds: dict[str, tuple[asyncio.Event, int]] = {}
        self._ts = itertools.count(100)
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/upload/{file_id}", self._upload, methods=["POST"]),
                Route("/respond/{key}", self._respond, methods=["POST"]),
            ]
        )

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str = "cmd") -> str:
        return f"{self.url}/respond/{key}"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[MockSlack]:
        async with serve_app(self.app) as url:
            self.url = url
            yield self

    def fail(self, method: str, error: str, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([error] * times)

    def hold(self, method: str, *, after: int = 0) -> None:
        self._holds[method] = (asyncio.Event(), after)

    def release(self, method: str) -> None:
        held = self._holds.pop(method, None)
        if held is not None:
            held[0].set()

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    async def wait_for(self, method: str, count: int = 1, within_s: float = 10.0) -> list[ApiCall]:
        """Wait until ``method`` was called ``count`` times; returns those calls."""
        deadline = time.monotonic() + within_s
        while len(self.calls_to(method)) < count:
            if time.monotonic() > deadline:
                seen = [call.method for call in self.calls]
                raise AssertionError(f"{method} called {len(self.calls_to(method))}x; saw {seen}")
            await asyncio.sleep(0.005)
        return self.calls_to(method)

    async def wait_for_responses(self, count: int = 1, within_s: float = 10.0) -> None:
        deadline = time.monotonic() + within_s
        while len(self.responses) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.responses)} response_url posts, wanted {count}")
            await asyncio.sleep(0.005)

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        args = _parse_body(request.headers.get("content-type", ""), await request.body())
        args.update(request.query_params)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        self.calls.append(ApiCall(method, args, token))
        held = self._holds.get(method)
        if held is not None and len(self.calls_to(method)) > held[1]:
            await held[0].wait()
        queued = self._failures.get(method)
        if queued:
            error = queued.pop(0)
            if error == "ratelimited":
                return JSONResponse(
                    {"ok": False, "error": error}, status_code=429, headers={"Retry-After": "0"}
                )
            return JSONResponse({"ok": False, "error": error})
        expected = self.token if method != "apps.connections.open" else None
        if expected is not None and token != expected:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        return JSONResponse({"ok": True, **self._answer(method, args)})

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "url": "https://stemhub-test.slack.com/",
                "team": "stemhub test",
                "user": "stemhub",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                "text": args.get("text", ""),
                "ts": ts,
                "team": TEAM_ID,
            }
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
            return {"channel": args.get("channel"), "ts": ts, "message": message}
        if method == "chat.update":
            return {
                "channel": args.get("channel"),
                "ts": args.get("ts"),
                "text": args.get("text", ""),
                "message": {"text": args.get("text", ""), "user": BOT_USER_ID, "bot_id": BOT_ID},
            }
        if method == "chat.postEphemeral":
            return {"message_ts": self._next_ts()}
        if method == "chat.delete":
            return {"channel": args.get("channel"), "ts": args.get("ts")}
        if method == "conversations.open":
            user = str(args.get("users", ""))
            return {"no_op": True, "already_open": True, "channel": {"id": "D" + user[1:]}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ids):08d}"
            self.files[file_id] = {"id": file_id, "name": args.get("filename")}
            return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = json.loads(args.get("files", "[]"))
            return {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "files.info":
            return {"file": self.files.get(args.get("file", ""), {})}
        if method == "usergroups.list":
            return {"usergroups": self.usergroups}
        if method == "views.open":
            view = json.loads(args["view"]) if isinstance(args.get("view"), str) else args["view"]
            return {"view": {"id": f"V{next(self._ids):08d}", "team_id": TEAM_ID, **view}}
        if method == "apps.connections.open":
            return {"url": self.socket_url or ""}
        return {}

    async def _upload(self, request: Request) -> Response:
        self.uploads[request.path_params["file_id"]] = await request.body()
        return Response(f"OK - {len(self.uploads)}", media_type="text/plain")

    async def _respond(self, request: Request) -> Response:
        self.responses.append((request.path_params["key"], json.loads(await request.body())))
        return Response("ok", media_type="text/plain")


class FileHost:
    """Private files the way ``files.slack.com`` serves them.

    ``/files-pri/{team}-{id}/download/{name}`` returns the audio for the right bearer
    token and the sign-in page otherwise; ``/files-pri/{team}-{id}/moved/{name}``
    redirects to ``elsewhere`` (another host: it must not see the token).
    """

    def __init__(self, *, token: str, audio: bytes, elsewhere: str | None = None) -> None:
        self.token = token
        self.audio = audio
        self.elsewhere = elsewhere
        self.url = ""
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.app = Starlette(
            routes=[
                Route("/files-pri/{owner}/download/{name}", self._download),
                Route("/files-pri/{owner}/moved/{name}", self._moved),
                Route("/cdn/{name}", self._download_public),
            ]
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FileHost]:
        async with serve_app(self.app) as url:
            self.url = url
            yield self

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def file_url(self, file_id: str, name: str, *, moved: bool = False) -> str:
        kind = "moved" if moved else "download"
        return f"{self.url}/files-pri/{TEAM_ID}-{file_id}/{kind}/{quote(name)}"

    def _record(self, request: Request) -> None:
        self.requests.append((request.url.path, dict(request.headers)))

    async def _download(self, request: Request) -> Response:
        self._record(request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(LOGIN_PAGE, media_type="text/html; charset=utf-8")
        return Response(self.audio, media_type="audio/wav")

    async def _moved(self, request: Request) -> Response:
        self._record(request)
        target = f"{self.elsewhere or self.url}/cdn/{request.path_params['name']}"
        return RedirectResponse(target, status_code=302)

    async def _download_public(self, request: Request) -> Response:
        self._record(request)
        return Response(self.audio, media_type="audio/wav")


class MockSocketMode:
    """Slack's Socket Mode endpoint: hands envelopes to connected apps, records their acks.

    Point ``MockSlack.socket_url`` at :attr:`url`; every app connection gets a ``hello``,
    then whatever :meth:`send` is given (to one connection, or to each).
    """

    def __init__(self) -> None:
        self.url = ""
        self.acks: list[dict[str, Any]] = []
        self.connections: list[web.WebSocketResponse] = []
        self._app = web.Application()
        self._app.router.add_get("/link", self._connect)
        self._runner: web.AppRunner | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[MockSocketMode]:
        runner = web.AppRunner(self._app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/link"
        try:
            yield self
        finally:
            for ws in list(self.connections):
                await ws.close()
            await runner.cleanup()

    async def wait_for_connections(self, count: int, within_s: float = 10.0) -> None:
        deadline = time.monotonic() + within_s
        while len(self.connections) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.connections)} socket connections, wanted {count}")
            await asyncio.sleep(0.01)

    async def send(self, envelope: dict[str, Any], *, to: int | None = None) -> None:
        """Send an envelope to connection ``to`` (all connections when ``None``)."""
        targets = self.connections if to is None else [self.connections[to]]
        for ws in targets:
            await ws.send_str(json.dumps(envelope))

    async def wait_for_acks(self, count: int, within_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within_s
        while len(self.acks) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.acks)} acks, wanted {count}")
            await asyncio.sleep(0.005)
        return self.acks

    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        hello = {
            "type": "hello",
            "num_connections": len(self.connections),
            "debug_info": {"host": "applink-mock", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }
        await ws.send_str(json.dumps(hello))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.acks.append({**json.loads(message.data), "at": time.monotonic()})
        return ws


def socket_envelope(
    kind: str, payload: dict[str, Any], *, envelope_id: str, retry_attempt: int = 0
) -> dict[str, Any]:
    """A Socket Mode envelope (``events_api``, ``slash_commands``, ``interactive``)."""
    envelope: dict[str, Any] = {
        "envelope_id": envelope_id,
        "payload": payload,
        "type": kind,
        "accepts_response_payload": kind != "events_api",
    }
    if kind == "events_api":
        envelope["retry_attempt"] = retry_attempt
        envelope["retry_reason"] = "timeout" if retry_attempt else ""
    return envelope


def signed(
    body: str, secret: str, *, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    """Headers Slack sends with a request: timestamp and v0 signature of the raw body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}
    if content_type is None:
        content_type = (
            "application/json" if body.startswith("{") else "application/x-www-form-urlencoded"
        )
    headers["Content-Type"] = content_type
    return headers


def slash_command(
    text: str,
    *,
    response_url: str,
    command: str = "/split",
    user: str = "U0ALICE",
    channel: str = "C0MUSIC",
    trigger_id: str = "1337.42.abcdef",
) -> str:
    """A slash command as Slack posts it (form-encoded)."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "stemhub-test",
            "channel_id": channel,
            "channel_name": "music",
            "user_id": user,
            "user_name": "alice",
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def slack_file(
    file_id: str, name: str, url: str, *, mimetype: str = "audio/wav", size: int = 1000
) -> dict[str, Any]:
    """A file object as it appears in messages and events."""
    return {
        "id": file_id,
        "created": 1700000000,
        "timestamp": 1700000000,
        "name": name,
        "title": name,
        "mimetype": mimetype,
        "filetype": name.rsplit(".", 1)[-1],
        "pretty_type": name.rsplit(".", 1)[-1].upper(),
        "user": "U0ALICE",
        "user_team": TEAM_ID,
        "editable": False,
        "size": size,
        "mode": "hosted",
        "is_external": False,
        "external_type": "",
        "is_public": False,
        "public_url_shared": False,
        "display_as_bot": False,
        "url_private": url,
        "url_private_download": url,
        "permalink": f"https://stemhub-test.slack.com/files/U0ALICE/{file_id}/{name}",
    }


def _payload(data: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(data)})


def message_shortcut(
    *,
    files: list[dict[str, Any]],
    response_url: str,
    callback_id: str = "stemhub_split_stems",
    user: str = "U0ALICE",
    channel: str = "C0MUSIC",
    message_ts: str = "1699999999.000100",
) -> str:
    """A message shortcut on a message (with ``files``), as Slack posts it."""
    return _payload(
        {
            "type": "message_action",
            "token": "legacy-verification-token",
            "action_ts": "1700000001.000001",
            "team": {"id": TEAM_ID, "domain": "stemhub-test"},
            "user": {"id": user, "username": "alice", "team_id": TEAM_ID, "name": "alice"},
            "channel": {"id": channel, "name": "music"},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": "1337.42.shortcut",
            "response_url": response_url,
            "message_ts": message_ts,
            "message": {
                "type": "message",
                "user": "U0BOB",
                "ts": message_ts,
                "text": "new demo, thoughts?",
                "files": files,
                "upload": False,
                "display_as_bot": False,
                "team": TEAM_ID,
            },
        }
    )


def block_action(
    *,
    action_id: str,
    value: str,
    response_url: str,
    user: str = "U0ALICE",
    channel: str = "C0MUSIC",
    message_ts: str = "1700000000.000150",
    thread_ts: str | None = None,
) -> str:
    """A button click on one of the app's messages."""
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": False,
    }
    if thread_ts:
        container["thread_ts"] = thread_ts
    return _payload(
        {
            "type": "block_actions",
            "user": {"id": user, "username": "alice", "name": "alice", "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "container": container,
            "trigger_id": "1337.42.action",
            "team": {"id": TEAM_ID, "domain": "stemhub-test"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": "music"},
            "message": {"type": "message", "ts": message_ts, "user": BOT_USER_ID, "text": ""},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "stemhub_result",
                    "text": {"type": "plain_text", "text": "button"},
                    "value": value,
                    "type": "button",
                    "action_ts": "1700000002.000001",
                }
            ],
        }
    )


def view_submission(
    *, callback_id: str, private_metadata: str, values: dict[str, Any], user: str = "U0ALICE"
) -> str:
    """A modal's submission (``values`` as in ``view.state.values``)."""
    return _payload(
        {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "stemhub-test"},
            "user": {"id": user, "username": "alice", "name": "alice", "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "trigger_id": "1337.42.view",
            "view": {
                "id": "V0MODAL",
                "team_id": TEAM_ID,
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "state": {"values": values},
                "hash": "1700000000.abcdef",
                "app_id": APP_ID,
                "bot_id": BOT_ID,
            },
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
    )


def event_callback(event: dict[str, Any], *, event_id: str = "Ev0STEMHUB1") -> str:
    """An Events API delivery (JSON) wrapping ``event``."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1700000000,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
        }
    )


def dm_file_message(
    files: list[dict[str, Any]],
    *,
    user: str = "U0ALICE",
    channel: str = "D0ALICE",
    ts: str = "1700000000.000200",
) -> dict[str, Any]:
    """The ``message`` event (subtype ``file_share``) of a file sent to the app in a DM."""
    return {
        "type": "message",
        "subtype": "file_share",
        "text": "",
        "files": files,
        "upload": True,
        "user": user,
        "display_as_bot": False,
        "ts": ts,
        "client_msg_id": "6e5fd7c2-0d3c-4a05-9b4e-3d2b1f3a2c11",
        "channel": channel,
        "event_ts": ts,
        "channel_type": "im",
    }


__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "LOGIN_PAGE",
    "TEAM_ID",
    "TEST_BOT_TOKEN",
    "ApiCall",
    "FileHost",
    "MockSlack",
    "MockSocketMode",
    "block_action",
    "dm_file_message",
    "event_callback",
    "message_shortcut",
    "serve_app",
    "signed",
    "slack_file",
    "slash_command",
    "socket_envelope",
    "view_submission",
]

"""A strict stand-in for Slack, for tests and benchmarks: no Slack workspace needed.

- :class:`MockSlack`: the Web API (``AsyncWebClient(base_url=...)`` points here), the
  upload URLs of ``files.getUploadURLExternal``, ``response_url`` endpoints and
  ``oauth.v2.access``. It keeps a small Slack world (workspaces, tokens with scopes,
  channels with members, messages, files) and refuses what Slack refuses, each rule with
  the error the method's page on api.slack.com documents (see :meth:`MockSlack._rules`).
  Time comes from a :class:`Clock` tests can advance. :class:`Chaos` (seeded) answers
  calls with refusals the method can really get.
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
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import random
import secrets
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from stemhub.http import serve_asgi

TEAM_ID = "T0STEMHUB"
BOT_USER_ID = "U0STEMBOT"
BOT_ID = "B0STEMBOT"
APP_ID = "A0STEMHUB"
TEST_BOT_TOKEN = "xoxb-test-token"
TEST_APP_TOKEN = "xapp-1-A0STEMHUB-1-test"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "oauth-client-secret"

BOT_SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "files:read",
        "files:write",
        "im:history",
        "im:write",
        "usergroups:read",
    }
)
"""What the manifest asks for (plus usergroups:read): a token that can do everything."""

LOGIN_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><title>Slack</title></head>'
    b'<body><form action="/signin">Sign in to your workspace</form></body></html>'
)

MAX_FILE_BYTES = 1024**3
"""https://slack.com/help/articles/201330736: a file can be up to 1 GB."""
MAX_TEXT_CHARS = 40_000
"""https://api.slack.com/methods/chat.postMessage#truncating: longer text is refused
(``msg_too_long``)."""
MAX_MESSAGE_BLOCKS = 50
"""https://api.slack.com/reference/block-kit/blocks: up to 50 blocks per message."""
MAX_VIEW_BLOCKS = 100
"""https://api.slack.com/reference/surfaces/views: up to 100 blocks in a modal."""
MAX_MODAL_TITLE = 24
"""https://api.slack.com/reference/surfaces/views: a modal's title (and its submit and
close labels), max 24 characters: checked by slack_sdk's ``View`` model."""
TRIGGER_TTL_S = 3.0
"""https://api.slack.com/interactivity/handling#modal_responses: a trigger_id expires
three seconds after it was issued (``expired_trigger_id``)."""
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL_S = 30 * 60.0
"""https://api.slack.com/interactivity/handling#message_responses: a response_url takes
up to 5 responses within 30 minutes."""
UPLOAD_URL_TTL_S = 60 * 60.0
"""An upload URL (and its file id) unused by files.completeUploadExternal is dropped."""
TOKEN_TTL_S = 12 * 3600.0
"""https://api.slack.com/authentication/rotation: with token rotation turned on, an access
token expires 12 hours after it was issued (``expires_in: 43200``); a call with it after
that is refused with ``token_expired`` (listed in every method's Errors table)."""

TIERS: dict[str, int] = {
    "auth.test": 4,
    "chat.update": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "conversations.open": 3,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
    "files.info": 4,
    "usergroups.list": 2,
    "views.open": 4,
    "apps.connections.open": 1,
    "oauth.v2.access": 4,
    "chat.postMessage": 4,
}
"""Each method's rate tier, from the "Rate limits" fact of its page on api.slack.com."""
PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
"""https://api.slack.com/apis/rate-limits: Tier 1 1+/min, 2 20+/min, 3 50+/min, 4 100+/min,
per method per app per workspace (the simulator allows the documented minimum)."""
MESSAGES_PER_CHANNEL_S = 1.0
"""https://api.slack.com/methods/chat.postMessage#rate_limiting: one message per second
per channel."""

SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "conversations.open": ("im:write",),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "files.info": ("files:read",),
    "usergroups.list": ("usergroups:read",),
}
"""The bot scope each method's page lists under "Required scopes"."""

CHAOS_REFUSALS: dict[str, tuple[str, ...]] = {
    "*": ("ratelimited", "internal_error", "fatal_error", "service_unavailable", "http_503"),
    "chat.postMessage": ("is_archived",),
    "chat.update": ("message_not_found", "is_archived"),
    "chat.postEphemeral": ("user_not_in_channel",),
    "files.completeUploadExternal": ("not_in_channel", "file_not_found"),
    "files.info": ("file_not_found",),
    "views.open": ("expired_trigger_id",),
    "upload": ("http_500", "http_408"),
    "response_url": ("expired_url", "used_url"),
}
"""What each method can really answer besides ``ok`` (its "Errors" table), beyond the
common errors every method lists: what chaos mode picks from. A refusal that reports a
change in the world (a message deleted, a channel archived, the app removed from a
channel, a file deleted, an upload expired) makes that change, so later calls agree."""


class SlackRefusal(Exception):
    """One documented refusal: the ``error`` value, extra fields, and the HTTP status."""

    def __init__(self, error: str, *, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra
        self.headers: dict[str, str] = {}

    def response(self) -> Response:
        if self.error.startswith("http_"):
            return PlainTextResponse(self.error, status_code=int(self.error[5:]))
        return JSONResponse(
            {"ok": False, "error": self.error, **self.extra},
            status_code=self.status,
            headers=self.headers,
        )


class Clock:
    """The simulator's time: the monotonic clock plus whatever tests advanced it by."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Chaos:
    """Seeded chaos: each call fails with probability ``rate``, with a refusal it can get."""

    seed: int
    rate: float = 0.1
    methods: frozenset[str] | None = None
    """Only these methods (None: all, including uploads and response_urls)."""
    picked: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def pick(self, method: str) -> str | None:
        if self.methods is not None and method not in self.methods:
            return None
        if self._random.random() >= self.rate:
            return None
        own = CHAOS_REFUSALS.get(method, ())
        common = () if method in ("upload", "response_url") else CHAOS_REFUSALS["*"]
        error = self._random.choice(own + common)
        self.picked.append((method, error))
        return error


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    archived: bool = False
    members: set[str] = field(default_factory=set)
    im_user: str | None = None

    @property
    def is_im(self) -> bool:
        return self.im_user is not None


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    blocks: list[Any] | None = None
    files: list[str] = field(default_factory=list)
    edits: list[str] = field(default_factory=list)


@dataclass
class Workspace:
    team_id: str
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    name: str = "stemhub test"
    channels: dict[str, Channel] = field(default_factory=dict)
    usergroups: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Token:
    team_id: str
    scopes: frozenset[str]
    revoked: bool = False
    expires_at: float | None = None
    """Simulator time after which the token is refused (``token_expired``); None: never."""


@dataclass
class ApiCall:
    """One Web API call as the simulator saw it, with what it answered."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)
    error: str | None = None
    team_id: str | None = None
    basic_auth: str | None = None


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {}
    return dict(parse_qsl(raw.decode()))


def _json_arg(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


serve_app = serve_asgi


class MockSlack:
    """The Slack Web API on loopback: a small Slack world that answers like Slack.

    ``fail(method, error)`` makes the next call of ``method`` fail with that Slack error
    (``"ratelimited"`` answers 429 with ``Retry-After``); ``hold(method, after=n)`` makes
    calls after the first ``n`` wait until ``release(method)``; ``chaos`` (a
    :class:`Chaos`) fails calls at random with refusals each method can really get.
    """

    def __init__(
        self, *, token: str = TEST_BOT_TOKEN, clock: Clock | None = None, rate_scale: float = 1.0
    ) -> None:
        self.clock = clock or Clock()
        self.rate_scale = rate_scale
        """Rate windows are divided by this (a bench runs Slack's limits faster)."""
        self.url = ""
        self.calls: list[ApiCall] = []
        self.uploads: dict[str, bytes] = {}
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.messages: list[Message] = []
        self.misthreaded: list[Message] = []
        """Messages posted with a ``thread_ts`` that is no thread's parent: Slack takes
        them, and nobody sees them in the thread (see :meth:`_thread`)."""
        self._parents: set[tuple[str, str]] = set()
        """(channel, ts) of every top-level message: a thread stays, even if its parent
        is deleted (https://api.slack.com/messaging/modifying#deleting)."""
        self.workspaces: dict[str, Workspace] = {}
        self.tokens: dict[str, Token] = {}
        self.app_tokens: set[str] = {TEST_APP_TOKEN}
        self.socket_url: str | None = None
        self.chaos: Chaos | None = None
        self.oauth_codes: dict[str, tuple[str, frozenset[str]]] = {}
        self.token_rotation = False
        """The app's ``token_rotation_enabled``: installs get expiring tokens and a refresh
        token (https://api.slack.com/authentication/rotation)."""
        self.refresh_tokens: dict[str, tuple[str, frozenset[str]]] = {}
        """Refresh tokens Slack still accepts: refresh token -> (team id, scopes)."""
        self.token_ttl_s = TOKEN_TTL_S
        """Lifetime of the rotating tokens handed out next: Slack's 12 hours, unless a test
        wants one that is already near its end."""
        self._failures: dict[str, list[str]] = {}
        self._holds: dict[str, tuple[asyncio.Event, int]] = {}
        self._triggers: dict[str, float] = {}
        self._used_triggers: set[str] = set()
        self.ephemeral: list[tuple[str, str, str]] = []
        self._response_urls: dict[str, tuple[float, int]] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._method_windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._channel_windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._ts = itertools.count(100)
        self._ids = itertools.count(1)
        workspace = self.add_workspace(TEAM_ID)
        for channel_id, name in (
            ("C0MUSIC", "music"),
            ("C0STUDIO", "studio"),
            ("C0RANDOM", "random"),
        ):
            self.add_channel(channel_id, name=name, team_id=workspace.team_id)
        for user in ("U0ALICE", "U0BOB"):
            self.dm(user)
        self._token = ""
        self.token = token
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/upload/{file_id}", self._upload, methods=["POST"]),
                Route("/respond/{key}", self._respond, methods=["POST"]),
            ]
        )

    # the world

    @property
    def token(self) -> str:
        """The default workspace's bot token (setting it replaces the old one)."""
        return self._token

    @token.setter
    def token(self, value: str) -> None:
        old = self.tokens.pop(self._token, None)
        self.tokens[value] = old or Token(TEAM_ID, BOT_SCOPES)
        self._token = value

    @property
    def usergroups(self) -> list[dict[str, Any]]:
        return self.workspaces[TEAM_ID].usergroups

    @usergroups.setter
    def usergroups(self, groups: list[dict[str, Any]]) -> None:
        self.workspaces[TEAM_ID].usergroups = groups

    def add_workspace(self, team_id: str, *, name: str = "stemhub test") -> Workspace:
        workspace = Workspace(team_id, name=name)
        self.workspaces[team_id] = workspace
        return workspace

    def add_token(
        self, token: str, *, team_id: str = TEAM_ID, scopes: frozenset[str] = BOT_SCOPES
    ) -> None:
        self.tokens[token] = Token(team_id, frozenset(scopes))

    def set_scopes(self, scopes: set[str] | frozenset[str], *, token: str | None = None) -> None:
        name = token or self.token
        self.tokens[name] = Token(self.tokens[name].team_id, frozenset(scopes))

    def revoke(self, token: str | None = None) -> None:
        self.tokens[token or self.token].revoked = True

    def revoke_refresh_tokens(self, team_id: str) -> None:
        """Slack no longer accepts the team's refresh tokens (the app was uninstalled, or
        an admin revoked its tokens)."""
        for refresh, (team, _scopes) in list(self.refresh_tokens.items()):
            if team == team_id:
                del self.refresh_tokens[refresh]

    def refresh_grants(self) -> list[ApiCall]:
        """The oauth.v2.access calls that asked for ``grant_type=refresh_token``."""
        return [
            call
            for call in self.calls_to("oauth.v2.access")
            if call.args.get("grant_type") == "refresh_token"
        ]

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        team_id: str = TEAM_ID,
        private: bool = False,
        archived: bool = False,
        bot_member: bool = True,
        members: tuple[str, ...] = ("U0ALICE", "U0BOB"),
    ) -> Channel:
        workspace = self.workspaces[team_id]
        who = set(members) | ({workspace.bot_user_id} if bot_member else set())
        channel = Channel(channel_id, name or channel_id.lower(), private, archived, who)
        workspace.channels[channel_id] = channel
        return channel

    def dm(self, user: str, *, team_id: str = TEAM_ID) -> Channel:
        """The DM of ``user`` with the app (``D`` + the user id's tail), opened if needed."""
        workspace = self.workspaces[team_id]
        channel_id = "D" + user[1:]
        channel = workspace.channels.get(channel_id)
        if channel is None:
            channel = Channel(
                channel_id, channel_id, True, False, {user, workspace.bot_user_id}, user
            )
            workspace.channels[channel_id] = channel
        return channel

    def user_message(
        self,
        channel: str,
        *,
        user: str = "U0BOB",
        ts: str | None = None,
        thread_ts: str | None = None,
        text: str = "",
        files: list[dict[str, Any]] | None = None,
    ) -> Message:
        """A message someone posted (the one a shortcut or a file event is about)."""
        message = Message(
            channel,
            ts or self._next_ts(),
            user,
            text,
            thread_ts,
            files=[str(f.get("id")) for f in files or []],
        )
        self._add_message(message)
        return message

    def connect_file(
        self,
        file_id: str,
        name: str,
        url: str,
        *,
        channel: str = "C0MUSIC",
        team_id: str = TEAM_ID,
        from_team: str = "T0PARTNER",
        ts: str | None = None,
    ) -> dict[str, Any]:
        """A file someone of another organisation shared in a Slack Connect channel of
        ``team_id``: files.info shows it to that workspace; messages and events carry only
        :func:`connect_stub` (https://api.slack.com/apis/channels-between-orgs)."""
        file = slack_file(file_id, name, url)
        file["user_team"] = from_team
        file["channels"] = [channel]
        file["shares"] = {
            "public": {channel: [{"ts": ts or "1699999999.000100", "team_id": from_team}]}
        }
        self.files[file_id] = file
        if channel not in self.workspaces[team_id].channels:
            self.add_channel(channel, team_id=team_id)
        return connect_stub(file_id)

    def can_download(self, token: str, file_id: str) -> bool:
        """Whether ``files.slack.com`` serves ``file_id`` to a bearer of ``token``: a token
        Slack takes (:meth:`_authenticate`), of a workspace that can see the file."""
        try:
            workspace, _scopes = self._authenticate("files.info", token)
        except SlackRefusal:
            return False
        file = self.files.get(file_id)
        return file is not None and self._visible(workspace, file)

    def trigger_id(self) -> str:
        """A fresh trigger_id, as Slack puts in a command or interaction payload."""
        trigger = f"{next(self._ids)}.1337.{secrets.token_hex(5)}"
        self._triggers[trigger] = self.clock.now()
        return trigger

    def response_url(self, key: str = "cmd") -> str:
        """A response_url as Slack puts in a payload; its 5 uses and 30 minutes start now."""
        self._response_urls.setdefault(key, (self.clock.now(), 0))
        return f"{self.url}/respond/{key}"

    def channel_messages(self, channel: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel]

    def message(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts == ts]

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[MockSlack]:
        async with serve_app(self.app) as url:
            self.url = url
            yield self

    # test controls

    def fail(self, method: str, error: str, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([error] * times)

    def hold(self, method: str, *, after: int = 0) -> None:
        self._holds[method] = (asyncio.Event(), after)

    def release(self, method: str) -> None:
        held = self._holds.pop(method, None)
        if held is not None:
            held[0].set()

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[ApiCall]:
        return [
            call
            for call in self.calls
            if call.method == method and (ok is None or (call.error is None) is ok)
        ]

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

    # the Web API

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _add_message(self, message: Message, *, lost: bool = False) -> None:
        self.messages.append(message)
        if lost:
            self.misthreaded.append(message)
        elif message.thread_ts in (None, message.ts):
            self._parents.add((message.channel, message.ts))

    def _thread(self, channel: Channel, args: dict[str, Any]) -> tuple[str | None, bool]:
        """``thread_ts``, and whether a reply with it would be lost.

        https://api.slack.com/methods/chat.postMessage#arg_thread_ts: "Provide another
        message's ts value to make this message a reply. Avoid using a reply's ts value;
        use its parent instead." (files.completeUploadExternal: "Never use a reply's ts
        value".) The Errors tables list no error for a ``thread_ts`` that is no parent:
        Slack answers ``ok`` and the reply shows in no thread anyone opens
        (slackapi/python-slack-sdk#840). The simulator answers ``ok`` too and keeps such a
        message in :attr:`misthreaded`, where tests look for it.
        """
        raw = args.get("thread_ts")
        if not raw:
            return None, False
        thread_ts = str(raw)
        return thread_ts, (channel.id, thread_ts) not in self._parents

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        args = _parse_body(request.headers.get("content-type", ""), await request.body())
        args.update(request.query_params)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        call = ApiCall(method, args, token)
        if auth.startswith("Basic "):
            call.basic_auth = auth.removeprefix("Basic ")
        self.calls.append(call)
        held = self._holds.get(method)
        if held is not None and len(self.calls_to(method)) > held[1]:
            await held[0].wait()
        try:
            queued = self._failures.get(method)
            if queued:
                raise self._refusal(queued.pop(0), method)
            if self.chaos is not None and (picked := self.chaos.pick(method)) is not None:
                self._make_true(method, picked, args, token)
                raise self._refusal(picked, method)
            answer = self._rules(method, args, token, call)
        except SlackRefusal as refusal:
            call.error = refusal.error
            return refusal.response()
        return JSONResponse({"ok": True, **answer})

    def _make_true(self, method: str, error: str, args: dict[str, Any], token: str | None) -> None:
        """Change the world the way a chaos refusal says it changed."""
        known = self.tokens.get(token or "")
        workspace = self.workspaces[known.team_id] if known is not None else None
        channel = None
        if workspace is not None:
            channel = workspace.channels.get(
                str(args.get("channel") or args.get("channel_id") or "")
            )
        if error == "message_not_found" and channel is not None:
            gone = self.message(channel.id, str(args.get("ts") or ""))
            if gone is not None:
                self.messages.remove(gone)
        elif error == "is_archived" and channel is not None and not channel.is_im:
            channel.archived = True
        elif error == "not_in_channel" and channel is not None and workspace is not None:
            if not channel.is_im:
                channel.members.discard(workspace.bot_user_id)
        elif error == "user_not_in_channel" and channel is not None and not channel.is_im:
            channel.members.discard(str(args.get("user") or ""))
        elif error == "file_not_found" and method == "files.info":
            self.files.pop(str(args.get("file") or ""), None)
        elif error == "file_not_found":
            for item in _json_arg(args.get("files") or "[]"):
                self._pending.pop(str(item.get("id")), None)

    def _refusal(self, error: str, method: str) -> SlackRefusal:
        if error == "ratelimited":
            refusal = SlackRefusal(error, status=429)
            refusal.headers["Retry-After"] = "1"
            return refusal
        if error == "missing_scope":
            needed = ",".join(SCOPES.get(method, ("chat:write",)))
            return SlackRefusal(error, needed=needed, provided="")
        return SlackRefusal(error)

    def _rules(
        self, method: str, args: dict[str, Any], token: str | None, call: ApiCall
    ) -> dict[str, Any]:
        """Dispatch to the method's rules after the checks every method shares."""
        if method == "oauth.v2.access":
            return self._oauth_v2_access({**args, **self._basic_auth(call)})
        if method == "apps.connections.open":
            return self._apps_connections_open(token)
        workspace, scopes = self._authenticate(method, token)
        call.team_id = workspace.team_id
        self._rate_limit(method, workspace.team_id)
        handler = self._methods().get(method)
        if handler is None:
            raise SlackRefusal("unknown_method")
        return handler(workspace, scopes, args)

    def _methods(
        self,
    ) -> dict[str, Callable[[Workspace, frozenset[str], dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "conversations.open": self._conversations_open,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "usergroups.list": self._usergroups_list,
            "views.open": self._views_open,
        }

    def _authenticate(self, method: str, token: str | None) -> tuple[Workspace, frozenset[str]]:
        """https://api.slack.com/web#authentication and each method's "Required scopes".

        No token: ``not_authed``; an unknown token: ``invalid_auth``; a revoked one:
        ``token_revoked``; an expired one (token rotation, :data:`TOKEN_TTL_S`):
        ``token_expired``; a token without the method's scope: ``missing_scope`` with
        ``needed`` (the scope) and ``provided`` (the token's scopes).
        """
        if not token:
            raise SlackRefusal("not_authed")
        known = self.tokens.get(token)
        if known is None:
            raise SlackRefusal("invalid_auth")
        if known.revoked:
            raise SlackRefusal("token_revoked")
        if known.expires_at is not None and self.clock.now() >= known.expires_at:
            raise SlackRefusal("token_expired")
        for scope in SCOPES.get(method, ()):
            if scope not in known.scopes:
                raise SlackRefusal(
                    "missing_scope", needed=scope, provided=",".join(sorted(known.scopes))
                )
        return self.workspaces[known.team_id], known.scopes

    def _rate_limit(self, method: str, team_id: str) -> None:
        """https://api.slack.com/apis/rate-limits: per method per workspace, per minute.

        Over the tier's allowance: HTTP 429, ``ratelimited`` and ``Retry-After`` (seconds
        until a slot frees).
        """
        allowed = PER_MINUTE[TIERS.get(method, 4)]
        self._take(self._method_windows[(team_id, method)], allowed, 60.0 / self.rate_scale)

    def _take(self, window: deque[float], allowed: int, span_s: float) -> None:
        now = self.clock.now()
        while window and window[0] <= now - span_s:
            window.popleft()
        if len(window) >= allowed:
            wait = window[0] + span_s - now
            refusal = SlackRefusal("ratelimited", status=429)
            refusal.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            raise refusal
        window.append(now)

    def _channel(self, workspace: Workspace, channel_id: Any, *, write: bool) -> Channel:
        """https://api.slack.com/methods/chat.postMessage#errors (shared by the chat and
        files methods): an unknown channel, or a private one the app is not in, is
        ``channel_not_found`` (the app cannot see it); an archived one is ``is_archived``
        for writes."""
        channel = workspace.channels.get(str(channel_id or ""))
        if channel is None and str(channel_id or "").startswith("U"):
            channel = self.dm(str(channel_id), team_id=workspace.team_id)
        if channel is None or (channel.private and workspace.bot_user_id not in channel.members):
            raise SlackRefusal("channel_not_found")
        if write and channel.archived:
            raise SlackRefusal("is_archived")
        return channel

    @staticmethod
    def _check_blocks(blocks: Any, *, limit: int = MAX_MESSAGE_BLOCKS) -> list[Any]:
        """https://api.slack.com/reference/block-kit/blocks: known block types, required
        fields, text lengths, element counts (slack_sdk's models), at most 50 blocks.
        Anything else is ``invalid_blocks``."""
        parsed = _json_arg(blocks)
        if not isinstance(parsed, list) or len(parsed) > limit:
            raise SlackRefusal("invalid_blocks")
        for raw in parsed:
            block = Block.parse(raw) if isinstance(raw, dict) else None
            if block is None:
                raise SlackRefusal("invalid_blocks", errors=[f"unknown block type: {raw!r:.60}"])
            try:
                block.validate_json()
            except SlackObjectFormationError as error:
                raise SlackRefusal("invalid_blocks", errors=[str(error)]) from None
        return parsed

    def _check_message(self, args: dict[str, Any]) -> tuple[str, list[Any] | None]:
        """https://api.slack.com/methods/chat.postMessage#errors: ``no_text`` without text
        or blocks, ``msg_too_long`` over 40,000 characters."""
        text = str(args.get("text") or "")
        blocks = self._check_blocks(args["blocks"]) if args.get("blocks") else None
        if not text and not blocks and not args.get("attachments"):
            raise SlackRefusal("no_text")
        if len(text) > MAX_TEXT_CHARS:
            raise SlackRefusal("msg_too_long")
        return text, blocks

    def _auth_test(
        self, workspace: Workspace, _scopes: frozenset[str], _args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/auth.test: who the token is."""
        return {
            "url": f"https://{workspace.team_id.lower()}.slack.com/",
            "team": workspace.name,
            "user": "stemhub",
            "team_id": workspace.team_id,
            "user_id": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(
        self, workspace: Workspace, scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/chat.postMessage.

        The app must be in the channel (``not_in_channel``) unless it has
        ``chat:write.public`` and the channel is public; one message per second per
        channel (429 ``ratelimited``, ``Retry-After``).
        """
        channel = self._channel(workspace, args.get("channel"), write=True)
        if workspace.bot_user_id not in channel.members and (
            channel.private or "chat:write.public" not in scopes
        ):
            raise SlackRefusal("not_in_channel")
        text, blocks = self._check_message(args)
        self._take(
            self._channel_windows[(workspace.team_id, channel.id)],
            1,
            MESSAGES_PER_CHANNEL_S / self.rate_scale,
        )
        ts = self._next_ts()
        thread_ts, lost = self._thread(channel, args)
        self._add_message(
            Message(channel.id, ts, workspace.bot_user_id, text, thread_ts, blocks), lost=lost
        )
        message: dict[str, Any] = {
            "type": "message",
            "user": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "app_id": APP_ID,
            "text": text,
            "ts": ts,
            "team": workspace.team_id,
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        return {"channel": channel.id, "ts": ts, "message": message}

    def _chat_update(
        self, workspace: Workspace, _scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/chat.update: ``channel`` and ``ts`` must name a
        message in that channel (``message_not_found``), posted by this app
        (``cant_update_message``)."""
        channel = self._channel(workspace, args.get("channel"), write=True)
        message = self.message(channel.id, str(args.get("ts") or ""))
        if message is None:
            raise SlackRefusal("message_not_found")
        if message.user != workspace.bot_user_id:
            raise SlackRefusal("cant_update_message")
        text, blocks = self._check_message(args)
        message.edits.append(text)
        message.text, message.blocks = text, blocks
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": text,
            "message": {"text": text, "user": workspace.bot_user_id, "bot_id": workspace.bot_id},
        }

    def _chat_post_ephemeral(
        self, workspace: Workspace, _scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/chat.postEphemeral: ``user`` is required
        (``invalid_arguments``) and must be in the channel (``user_not_in_channel``); the
        app must be in it too (``not_in_channel``)."""
        if not args.get("user"):
            raise SlackRefusal(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: user"]},
            )
        channel = self._channel(workspace, args.get("channel"), write=True)
        if workspace.bot_user_id not in channel.members:
            raise SlackRefusal("not_in_channel")
        if str(args["user"]) not in channel.members:
            raise SlackRefusal("user_not_in_channel")
        text, _blocks = self._check_message(args)
        self.ephemeral.append((channel.id, str(args["user"]), text))
        return {"message_ts": self._next_ts()}

    def _chat_delete(
        self, workspace: Workspace, _scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/chat.delete: ``message_not_found``,
        ``cant_delete_message`` for messages of others."""
        channel = self._channel(workspace, args.get("channel"), write=True)
        message = self.message(channel.id, str(args.get("ts") or ""))
        if message is None:
            raise SlackRefusal("message_not_found")
        if message.user != workspace.bot_user_id:
            raise SlackRefusal("cant_delete_message")
        self.messages.remove(message)
        return {"channel": channel.id, "ts": message.ts}

    def _conversations_open(
        self, workspace: Workspace, _scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/conversations.open: ``users`` or ``channel`` is
        required (``users_list_not_supplied``)."""
        user = str(args.get("users") or "")
        if not user:
            raise SlackRefusal("users_list_not_supplied")
        if user == workspace.bot_user_id:
            raise SlackRefusal("cannot_dm_bot")
        channel = self.dm(user, team_id=workspace.team_id)
        return {"no_op": True, "already_open": True, "channel": {"id": channel.id}}

    def _files_get_upload_url(
        self, workspace: Workspace, _scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/files.getUploadURLExternal: ``filename`` and
        ``length`` are required and a file is at most 1 GB (``invalid_arguments``)."""
        try:
            length = int(args.get("length", ""))
        except ValueError:
            length = -1
        if not args.get("filename") or length < 0 or length > MAX_FILE_BYTES:
            raise SlackRefusal("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        self._pending[file_id] = {
            "team_id": workspace.team_id,
            "name": str(args["filename"]),
            "length": length,
            "issued": self.clock.now(),
        }
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(
        self, workspace: Workspace, scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/files.completeUploadExternal.

        Every id must come from files.getUploadURLExternal of this workspace, be
        uploaded, not completed yet and not expired (``file_not_found``). Sharing into a
        channel needs the app in it: ``chat:write.public`` does not cover files
        (``not_in_channel``). All files of one call are one message.
        """
        files = _json_arg(args.get("files") or "[]")
        if not isinstance(files, list) or not files:
            raise SlackRefusal("invalid_arguments")
        now = self.clock.now()
        for item in files:
            pending = self._pending.get(str(item.get("id")))
            if (
                pending is None
                or pending["team_id"] != workspace.team_id
                or str(item.get("id")) not in self.uploads
                or now - pending["issued"] > UPLOAD_URL_TTL_S
            ):
                raise SlackRefusal("file_not_found")
        channel_id = args.get("channel_id") or args.get("channels")
        channel = None
        if channel_id:
            channel = self._channel(workspace, channel_id, write=True)
            if workspace.bot_user_id not in channel.members:
                raise SlackRefusal("not_in_channel")
        done = []
        for item in files:
            file_id = str(item["id"])
            pending = self._pending.pop(file_id)
            self.files[file_id] = {
                "id": file_id,
                "name": pending["name"],
                "title": item.get("title") or pending["name"],
                "size": len(self.uploads[file_id]),
                "user_team": workspace.team_id,
                "channels": [channel.id] if channel is not None else [],
            }
            done.append({"id": file_id, "title": self.files[file_id]["title"]})
        if channel is not None:
            thread_ts, lost = self._thread(channel, args)
            self._add_message(
                Message(
                    channel.id,
                    self._next_ts(),
                    workspace.bot_user_id,
                    str(args.get("initial_comment") or ""),
                    thread_ts,
                    files=[f["id"] for f in done],
                ),
                lost=lost,
            )
        return {"files": done}

    def _files_info(
        self, workspace: Workspace, _scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/files.info: ``file_not_found`` for an unknown id
        and for a file the workspace cannot see ("does not exist, or is not visible to the
        calling user"). The full object, also for Slack Connect files that messages and
        events carry as stubs (https://api.slack.com/apis/channels-between-orgs)."""
        file = self.files.get(str(args.get("file") or ""))
        if file is None or not self._visible(workspace, file):
            raise SlackRefusal("file_not_found")
        return {"file": file}

    @staticmethod
    def _visible(workspace: Workspace, file: dict[str, Any]) -> bool:
        """A file is seen by its own workspace and by those it was shared with (a Slack
        Connect channel): https://api.slack.com/types/file (``user_team``, ``channels``)."""
        owner = file.get("user_team")
        shared = [*file.get("channels", []), *file.get("groups", []), *file.get("ims", [])]
        return owner in (None, workspace.team_id) or any(
            channel in workspace.channels for channel in shared
        )

    def _usergroups_list(
        self, workspace: Workspace, _scopes: frozenset[str], _args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/usergroups.list (needs ``usergroups:read``)."""
        return {"usergroups": workspace.usergroups}

    def _views_open(
        self, workspace: Workspace, _scopes: frozenset[str], args: dict[str, Any]
    ) -> dict[str, Any]:
        """https://api.slack.com/methods/views.open.

        The trigger_id must be one Slack issued (``invalid_trigger_id``) within the last
        3 seconds (``expired_trigger_id``), used once (``exchanged_trigger_id``); the view
        is checked like Slack does (https://api.slack.com/reference/surfaces/views):
        ``invalid_arguments`` with the reasons in ``response_metadata.messages``.
        """
        trigger = str(args.get("trigger_id") or "")
        issued = self._triggers.pop(trigger, None)
        if issued is None:
            raise SlackRefusal(
                "exchanged_trigger_id" if trigger in self._used_triggers else "invalid_trigger_id"
            )
        self._used_triggers.add(trigger)
        if self.clock.now() - issued > TRIGGER_TTL_S:
            raise SlackRefusal("expired_trigger_id")
        view = _json_arg(args.get("view"))
        problems = self._view_problems(view)
        if problems:
            raise SlackRefusal("invalid_arguments", response_metadata={"messages": problems})
        return {"view": {"id": f"V{next(self._ids):08d}", "team_id": workspace.team_id, **view}}

    def _view_problems(self, view: Any) -> list[str]:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            return ["[ERROR] must be a modal or home view [json-pointer:/view/type]"]
        problems: list[str] = []
        title = ((view.get("title") or {}).get("text")) or ""
        if view["type"] == "modal" and not title:
            problems.append("[ERROR] missing required field: title [json-pointer:/view/title]")
        try:
            self._check_blocks(view.get("blocks") or [], limit=MAX_VIEW_BLOCKS)
            View(**{k: v for k, v in view.items() if k in _VIEW_FIELDS}).validate_json()
        except SlackRefusal as refusal:
            problems.extend(refusal.extra.get("errors") or ["[ERROR] invalid blocks"])
        except (SlackObjectFormationError, TypeError) as error:
            problems.append(f"[ERROR] {error}")
        return problems

    def _apps_connections_open(self, token: str | None) -> dict[str, Any]:
        """https://api.slack.com/methods/apps.connections.open: an app-level token
        (``xapp-``) with ``connections:write``; a bot token is ``not_allowed_token_type``."""
        if not token:
            raise SlackRefusal("not_authed")
        if token.startswith("xoxb-"):
            raise SlackRefusal("not_allowed_token_type")
        if token not in self.app_tokens:
            raise SlackRefusal("invalid_auth")
        return {"url": self.socket_url or ""}

    @staticmethod
    def _basic_auth(call: ApiCall) -> dict[str, str]:
        """oauth.v2.access takes the client id and secret as HTTP Basic auth too."""
        if not call.basic_auth:
            return {}
        user, _, password = base64.b64decode(call.basic_auth).decode().partition(":")
        return {"client_id": user, "client_secret": password}

    def oauth_code(self, team_id: str, *, scopes: frozenset[str] = BOT_SCOPES) -> str:
        """A code as Slack puts in the redirect after someone approved the install."""
        code = f"code-{next(self._ids)}"
        self.oauth_codes[code] = (team_id, scopes)
        if team_id not in self.workspaces:
            workspace = self.add_workspace(team_id, name=f"team {team_id}")
            for channel_id in ("C0MUSIC", "C0STUDIO"):
                self.add_channel(channel_id, team_id=workspace.team_id)
        return code

    def _oauth_v2_access(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://api.slack.com/methods/oauth.v2.access: the client credentials
        (``invalid_client_id``, ``bad_client_secret``) and a code used once
        (``invalid_code``) give the team's bot token; with ``grant_type=refresh_token``,
        see :meth:`_refresh_grant`."""
        if args.get("client_id") != CLIENT_ID:
            raise SlackRefusal("invalid_client_id")
        if args.get("client_secret") != CLIENT_SECRET:
            raise SlackRefusal("bad_client_secret")
        if args.get("grant_type") == "refresh_token":
            return self._refresh_grant(str(args.get("refresh_token") or ""))
        granted = self.oauth_codes.pop(str(args.get("code") or ""), None)
        if granted is None:
            raise SlackRefusal("invalid_code")
        return {**self._grant(*granted), "authed_user": {"id": "U0INSTALLER"}}

    def _grant(self, team_id: str, scopes: frozenset[str]) -> dict[str, Any]:
        """What oauth.v2.access answers: a new bot token of the team, and who the bot is."""
        workspace = self.workspaces[team_id]
        return {
            **self._bot_token(team_id, scopes),
            "bot_user_id": workspace.bot_user_id,
            "app_id": APP_ID,
            "team": {"id": team_id, "name": workspace.name},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _bot_token(self, team_id: str, scopes: frozenset[str]) -> dict[str, Any]:
        """A new bot token; with token rotation an expiring ``xoxe.xoxb-`` token, its
        ``expires_in`` and a refresh token (https://api.slack.com/authentication/rotation)."""
        serial = next(self._ids)
        if not self.token_rotation:
            token = f"xoxb-{team_id.lower()}-{serial}"
            self.add_token(token, team_id=team_id, scopes=scopes)
            return {"access_token": token, "token_type": "bot", "scope": ",".join(sorted(scopes))}
        token = f"xoxe.xoxb-1-{team_id.lower()}-{serial}-{secrets.token_hex(4)}"
        refresh = f"xoxe-1-{team_id.lower()}-{serial}-{secrets.token_hex(8)}"
        self.tokens[token] = Token(
            team_id, frozenset(scopes), expires_at=self.clock.now() + self.token_ttl_s
        )
        self.refresh_tokens[refresh] = (team_id, frozenset(scopes))
        return {
            "access_token": token,
            "token_type": "bot",
            "scope": ",".join(sorted(scopes)),
            "refresh_token": refresh,
            "expires_in": int(self.token_ttl_s),
        }

    def _refresh_grant(self, refresh_token: str) -> dict[str, Any]:
        """https://api.slack.com/authentication/rotation and the "Refresh tokens" section of
        https://api.slack.com/methods/oauth.v2.access: a refresh token gives a new access
        token (12 hours) and a new refresh token, and "the refresh token is then revoked":
        using it again, or one of an uninstalled app, is ``invalid_refresh_token`` (the
        error Slack documents for a refresh token it does not take,
        https://api.slack.com/methods/tooling.tokens.rotate#errors). The old access token
        is left to expire on its own: the docs say nothing of revoking it early."""
        granted = self.refresh_tokens.pop(refresh_token, None)
        if granted is None:
            raise SlackRefusal("invalid_refresh_token")
        return self._grant(*granted)

    async def _upload(self, request: Request) -> Response:
        """The upload URL of files.getUploadURLExternal: the file's bytes, raw or
        multipart (https://api.slack.com/methods/files.getUploadURLExternal)."""
        file_id = request.path_params["file_id"]
        if self.chaos is not None and (picked := self.chaos.pick("upload")) is not None:
            return PlainTextResponse(picked, status_code=int(picked[5:]))
        pending = self._pending.get(file_id)
        if pending is None:
            return PlainTextResponse("file_not_found", status_code=404)
        size = 0
        chunks: list[bytes] = []
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                return PlainTextResponse("file too large", status_code=413)
            chunks.append(chunk)
        self.uploads[file_id] = b"".join(chunks)
        return Response(f"OK - {size}", media_type="text/plain")

    async def _respond(self, request: Request) -> Response:
        """A response_url: 5 uses within 30 minutes; then 404 ``used_url`` / ``expired_url``
        (https://api.slack.com/interactivity/handling#message_responses)."""
        key = request.path_params["key"]
        issued = self._response_urls.get(key)
        picked = self.chaos.pick("response_url") if self.chaos is not None else None
        if picked is not None:
            return PlainTextResponse(picked, status_code=404)
        if issued is None or self.clock.now() - issued[0] > RESPONSE_URL_TTL_S:
            return PlainTextResponse("expired_url", status_code=404)
        if issued[1] >= RESPONSE_URL_USES:
            return PlainTextResponse("used_url", status_code=404)
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not payload.get("text") and not payload.get("blocks"):
            return PlainTextResponse("no_text", status_code=400)
        self._response_urls[key] = (issued[0], issued[1] + 1)
        self.responses.append((key, payload))
        return Response("ok", media_type="text/plain")


_VIEW_FIELDS = frozenset(
    {
        "type",
        "id",
        "callback_id",
        "external_id",
        "team_id",
        "bot_id",
        "app_id",
        "root_view_id",
        "previous_view_id",
        "title",
        "submit",
        "close",
        "blocks",
        "private_metadata",
        "state",
        "hash",
        "clear_on_close",
        "notify_on_close",
    }
)


class FileHost:
    """Private files the way ``files.slack.com`` serves them.

    ``/files-pri/{team}-{id}/download/{name}`` returns the audio for the right bearer
    token and the sign-in page otherwise; ``/files-pri/{team}-{id}/moved/{name}``
    redirects to ``elsewhere`` (another host: it must not see the token). With ``api``
    set, the right token is any the simulator takes whose workspace can see the file
    (:meth:`MockSlack.can_download`: rotated, per-workspace and Slack Connect tokens).
    """

    def __init__(
        self,
        *,
        token: str,
        audio: bytes,
        elsewhere: str | None = None,
        api: MockSlack | None = None,
    ) -> None:
        self.token = token
        self.audio = audio
        self.elsewhere = elsewhere
        self.api = api
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
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        file_id = request.path_params["owner"].rsplit("-", 1)[-1]
        if self.api is not None:
            allowed = self.api.can_download(bearer, file_id)
        else:
            allowed = bearer == self.token
        if not allowed:
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


def connect_stub(file_id: str) -> dict[str, Any]:
    """A file shared from another organisation (Slack Connect) as messages and events carry
    it: no name, no URLs, ``file_access: check_file_info``; files.info has the rest
    (https://api.slack.com/apis/channels-between-orgs#check_file_info)."""
    return {"id": file_id, "mode": "hidden_by_limit", "file_access": "check_file_info"}


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
    thread_ts: str | None = None,
) -> str:
    """A message shortcut on a message (with ``files``), as Slack posts it; ``thread_ts``:
    the message is a reply in that thread."""
    message: dict[str, Any] = {
        "type": "message",
        "user": "U0BOB",
        "ts": message_ts,
        "text": "new demo, thoughts?",
        "files": files,
        "upload": False,
        "display_as_bot": False,
        "team": TEAM_ID,
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
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
            "message": message,
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
    trigger_id: str = "1337.42.action",
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
            "trigger_id": trigger_id,
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
    "BOT_SCOPES",
    "BOT_USER_ID",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "LOGIN_PAGE",
    "TEAM_ID",
    "TEST_APP_TOKEN",
    "TEST_BOT_TOKEN",
    "TOKEN_TTL_S",
    "ApiCall",
    "Chaos",
    "Clock",
    "FileHost",
    "Message",
    "MockSlack",
    "MockSocketMode",
    "SlackRefusal",
    "block_action",
    "connect_stub",
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

"""A local fake of the Discord REST endpoints the bot uses, plus a "CDN" for attachments.

discord.py is pointed at it (``STEMHUB_DISCORD_API_BASE_URL``), so what it records is
exactly what the bot would send to Discord: JSON bodies, and multipart bodies with
``payload_json`` and the uploaded files. Switches make it answer like Discord does when
something is off: a dead interaction token (401, code 50027), a user whose DMs are
closed (403, code 50007), a channel the bot may not post in (403, code 50013).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

APP_ID = 1100000000000000001
BOT_ID = 1100000000000000001
GUILD_ID = 1200000000000000002
CHANNEL_ID = 1300000000000000003
USER_ID = 1400000000000000004
OTHER_USER_ID = 1400000000000000005
ROLE_ID = 1500000000000000006

BOT_USER = {
    "id": str(BOT_ID),
    "username": "stemhub",
    "discriminator": "0",
    "global_name": "stemhub",
    "avatar": None,
    "bot": True,
    "flags": 0,
    "mfa_enabled": True,
    "verified": True,
}


@dataclass
class Call:
    """One request as it reached the fake Discord."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = 0.0

    @property
    def payload(self) -> Any:
        """The JSON body, whether sent plain or as multipart ``payload_json``."""
        return self.json


@dataclass
class FakeDiscord:
    calls: list[Call] = field(default_factory=list)
    dead_tokens: set[str] = field(default_factory=set)
    closed_dms: set[int] = field(default_factory=set)
    forbidden_channels: set[int] = field(default_factory=set)
    cdn_files: dict[str, bytes] = field(default_factory=dict)
    hold_followups: asyncio.Event | None = None
    """While set, follow-ups hang unanswered and unrecorded (a hub dies meanwhile)."""
    url: str = ""
    identified: list[dict[str, Any]] = field(default_factory=list)
    gateways: list[web.WebSocketResponse] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1600000000000000000))
    _dm_channels: dict[int, int] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"{self.url}/api/v10"

    def cdn_url(self, name: str) -> str:
        return f"{self.url}/cdn/attachments/{CHANNEL_ID}/{name}?ex=6800&is=6700&hm=abc"

    @property
    def gateway_url(self) -> str:
        return f"{self.url.replace('http://', 'ws://')}/gateway"

    async def push(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway DISPATCH to every connected session (text frames, uncompressed)."""
        for ws in self.gateways:
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": 2, "d": data}))

    def new_id(self) -> int:
        return next(self._ids)

    def find(self, method: str, contains: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and contains in c.path]

    def webhook_calls(self) -> list[Call]:
        return [c for c in self.calls if "/webhooks/" in c.path or "/interactions/" in c.path]

    def message(self, channel_id: int, body: dict[str, Any], files: dict[str, Any]) -> Any:
        attachments = [
            {
                "id": str(self.new_id()),
                "filename": name,
                "size": len(data),
                "url": f"{self.url}/cdn/attachments/{channel_id}/{name}",
                "proxy_url": f"{self.url}/cdn/attachments/{channel_id}/{name}",
            }
            for name, data in files.values()
        ]
        return {
            "id": str(self.new_id()),
            "channel_id": str(channel_id),
            "type": 0,
            "content": body.get("content") or "",
            "author": BOT_USER,
            "embeds": body.get("embeds") or [],
            "attachments": attachments,
            "components": body.get("components") or [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": "2026-11-21T10:00:00.000000+00:00",
            "edited_timestamp": None,
            "flags": int(body.get("flags") or 0),
            "webhook_id": str(APP_ID),
        }


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON with the exact content type Discord sends (discord.py compares it verbatim)."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status=status)


async def _record(fake: FakeDiscord, request: web.Request) -> Call:
    call = Call(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=dict(request.headers),
        at=time.perf_counter(),
    )
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            assert isinstance(part, BodyPartReader)
            data = await part.read()
            if part.name == "payload_json":
                call.json = json.loads(bytes(data))
            else:
                call.files[part.name or ""] = (part.filename or "", bytes(data))
    elif request.can_read_body:
        raw = await request.read()
        call.json = json.loads(raw) if raw else None
    fake.calls.append(call)
    return call


def make_app(fake: FakeDiscord) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/api/v10/users/@me")
    async def me(request: web.Request) -> web.Response:
        await _record(fake, request)
        if request.headers.get("Authorization") != "Bot fake-bot-token":
            return _error(401, 0, "401: Unauthorized")
        return _json(BOT_USER)

    @routes.get("/api/v10/oauth2/applications/@me")
    async def application(request: web.Request) -> web.Response:
        await _record(fake, request)
        return _json(
            {
                "id": str(APP_ID),
                "name": "stemhub",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": {**BOT_USER, "id": str(USER_ID), "bot": False},
                "verify_key": "00",
                "flags": 0,
            }
        )

    @routes.put("/api/v10/applications/{app}/commands")
    @routes.put("/api/v10/applications/{app}/guilds/{guild}/commands")
    async def sync(request: web.Request) -> web.Response:
        call = await _record(fake, request)
        out = []
        for command in call.json:
            out.append(
                {
                    "description": "",
                    **command,
                    "id": str(fake.new_id()),
                    "application_id": request.match_info["app"],
                    "version": "1",
                    "default_member_permissions": command.get("default_member_permissions"),
                }
            )
        return _json(out)

    @routes.post("/api/v10/interactions/{id}/{token}/callback")
    async def callback(request: web.Request) -> web.Response:
        call = await _record(fake, request)
        if request.match_info["token"] in fake.dead_tokens:
            return _error(404, 10062, "Unknown interaction")
        body = call.json or {}
        flags = int((body.get("data") or {}).get("flags") or 0)
        resource: dict[str, Any] = {"type": body.get("type")}
        message_id = str(fake.new_id())
        if body.get("type") == 4:
            resource["message"] = fake.message(CHANNEL_ID, body.get("data") or {}, call.files)
            message_id = resource["message"]["id"]
        return _json(
            {
                "interaction": {
                    "id": request.match_info["id"],
                    "type": 2,
                    "response_message_id": message_id,
                    "response_message_loading": body.get("type") == 5,
                    "response_message_ephemeral": bool(flags & 64),
                },
                "resource": resource,
            }
        )

    @routes.patch("/api/v10/webhooks/{app}/{token}/messages/{message}")
    async def edit_webhook_message(request: web.Request) -> web.Response:
        call = await _record(fake, request)
        if request.match_info["token"] in fake.dead_tokens:
            return _error(401, 50027, "Invalid Webhook Token")
        return _json(fake.message(CHANNEL_ID, call.json or {}, call.files))

    @routes.post("/api/v10/webhooks/{app}/{token}")
    async def followup(request: web.Request) -> web.Response:
        if fake.hold_followups is not None:
            await fake.hold_followups.wait()
            return _error(500, 0, "held")
        call = await _record(fake, request)
        if request.match_info["token"] in fake.dead_tokens:
            return _error(401, 50027, "Invalid Webhook Token")
        return _json(fake.message(CHANNEL_ID, call.json or {}, call.files))

    @routes.post("/api/v10/users/@me/channels")
    async def open_dm(request: web.Request) -> web.Response:
        call = await _record(fake, request)
        user = int(call.json["recipient_id"])
        channel = fake._dm_channels.setdefault(user, fake.new_id())
        return _json(
            {
                "id": str(channel),
                "type": 1,
                "last_message_id": None,
                "recipients": [{**BOT_USER, "id": str(user), "bot": False, "username": "someone"}],
            }
        )

    @routes.post("/api/v10/channels/{channel}/messages")
    async def post_message(request: web.Request) -> web.Response:
        call = await _record(fake, request)
        channel = int(request.match_info["channel"])
        dm_owner = {c: u for u, c in fake._dm_channels.items()}.get(channel)
        if dm_owner is not None and dm_owner in fake.closed_dms:
            return _error(403, 50007, "Cannot send messages to this user")
        if channel in fake.forbidden_channels:
            return _error(403, 50013, "Missing Permissions")
        return _json(fake.message(channel, call.json or {}, call.files))

    @routes.get("/gateway")
    async def gateway(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        async for message in ws:
            frame = json.loads(message.data)
            if frame["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif frame["op"] == 2:
                fake.identified.append(frame["d"])
                shard = frame["d"].get("shard", [0, 1])
                ready = {
                    "v": 10,
                    "user": BOT_USER,
                    "guilds": [],
                    "session_id": "fake-session",
                    "resume_gateway_url": fake.gateway_url,
                    "application": {"id": str(APP_ID), "flags": 0},
                    "shard": shard,
                }
                await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": 1, "d": ready}))
                fake.gateways.append(ws)
        return ws

    @routes.get("/cdn/attachments/{channel}/{name}")
    async def cdn(request: web.Request) -> web.Response:
        await _record(fake, request)
        data = fake.cdn_files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=data, content_type="audio/wav")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes(routes)
    return app


@contextlib.asynccontextmanager
async def running_fake_discord(
    cdn_files: dict[str, Path] | None = None,
) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    for name, path in (cdn_files or {}).items():
        fake.cdn_files[name] = path.read_bytes()
    runner = web.AppRunner(make_app(fake), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()

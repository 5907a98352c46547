"""A strict simulator of the Discord REST API the bot uses, its gateway, and its CDN.

discord.py is pointed at it (``STEMHUB_DISCORD_API_BASE_URL``), so what it records is what
the bot would send to Discord: JSON bodies, and multipart bodies with ``payload_json`` and
the uploaded ``files[n]``. It answers the way Discord answers and refuses what Discord
refuses. Each rule below names the page of Discord's developer documentation it comes
from (https://discord.com/developers/docs/..., read in the discord/discord-api-docs
repository, and checked against discord.py 2.7's ``http.py`` and ``webhook/async_.py``):

Authorization (``reference#authentication``; ``topics/opcodes-and-status-codes#http``)
    Every bot route needs ``Authorization: Bot <token>``; without it, or with another
    token: 401 ``{"message": "401: Unauthorized", "code": 0}``. Interaction callbacks and
    interaction webhooks are authenticated by the token in their path
    (``interactions/receiving-and-responding#endpoints``). IDENTIFY with a wrong token
    closes the gateway with 4004 (``topics/opcodes-and-status-codes#gateway``).

Message bodies (``resources/message#create-message``, ``#embed-object-embed-limits``)
    ``content`` up to 2000 characters; up to 10 embeds; per embed: title 256,
    description 4096, 25 fields, field name 256, field value 1024, footer text 2048,
    author name 256; all those texts of all embeds together 6000; at most 10 files.
    A breach is 400 with code 50035 "Invalid Form Body" and the nested ``errors`` object
    of ``reference#error-messages`` (``{"embeds": {"0": {"fields": {"0": {"value":
    {"_errors": [...]}}}}}}``). A message with nothing in it: 400 / 50006.

Components (``components/reference#action-row``, ``#button``, ``#string-select``)
    At most 5 action rows; a row holds up to 5 buttons or one select; ``custom_id`` 1-100
    characters and unique in the message; button label 80; select 1-25 options, option
    label and value 100, placeholder 150. A breach is 50035 like the bodies above.

Attachments (``reference#uploading-files``; interaction ``attachment_size_limit`` in
``interactions/receiving-and-responding#interaction-object``)
    The size limit applies to each file. Through an interaction's webhook it is that
    interaction's ``attachment_size_limit`` (boost tiers raise it); bot-token posts in
    channels and DMs get the 10 MiB default (``channel_limits`` raises a channel's).
    A file over it, or a request whose files together pass the per-request cap
    (``request_cap``; Discord publishes no figure, clients record 25 MiB, and the cap is
    never below the per-file limit): 413 with code 40005 "Request entity too large".

Nonces (``resources/message#create-message``, JSON params ``nonce``/``enforce_nonce``)
    A nonce is an integer or a string of up to 25 characters (else 50035). With
    ``enforce_nonce`` a second message of the same author with the same nonce within a
    few minutes is not created: the first is returned.

Interactions (``interactions/receiving-and-responding#responding-to-an-interaction``)
    The initial response must come within 3 seconds of the interaction's creation, once:
    later (or for an interaction Discord never sent) 404 / 10062 "Unknown interaction";
    twice 400 / 40060 "Interaction has already been acknowledged". A deferred response
    (type 5) may carry only the EPHEMERAL flag. The token works for 15 minutes: after
    that the webhook endpoints answer 401 / 50027 "Invalid Webhook Token"; a token never
    issued (or a message of it that was never acknowledged) is 404 / 10015 "Unknown
    Webhook". A follow-up sent while the deferred response is still loading edits that
    response instead, keeping its ephemeral state (``#create-followup-message``).
    Deadlines read :class:`SimClock`, which tests advance instead of sleeping.

Channels and DMs (``topics/opcodes-and-status-codes#json``)
    50007 "Cannot send messages to this user" (DMs closed), 50278 "... no mutual guilds",
    50083 archived thread, 50013 missing permissions, 50001 missing access, 10003 unknown
    channel, 10008 unknown message. Each has a switch (``closed_dms``, ...).

Rate limits (``topics/rate-limits``)
    Responses of limited routes carry ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``,
    ``-Reset-After`` and ``-Bucket``. Over a per-route limit (``route_limits``) or the
    global 50 requests per second of a bot token (interaction endpoints exempt): 429 with
    ``Retry-After``, ``X-RateLimit-Scope`` (``user``/``global``/``shared``),
    ``X-RateLimit-Global`` when global, and ``{"message", "retry_after", "global"}``.
    Like Discord's edge, a 429 carries a ``Via`` header (discord.py reads a 429 without
    one as a Cloudflare ban).

Gateway (``events/gateway#get-gateway-bot``, ``#sharding``, ``#identifying``)
    ``GET /gateway/bot`` gives the URL, the recommended ``shards`` and the
    ``session_start_limit``. IDENTIFY with ``shard: [id, count]`` where id >= count
    closes with 4010 "Invalid shard". A session keeps the shard it identified with
    (none given: ``[0, 1]``, which gets every event). A dispatch of a guild goes only to
    the sessions of that guild's shard, ``shard_id = (guild_id >> 22) % num_shards``;
    one of no guild (a DM's interaction) only to shard 0 (``#sharding``: "DMs will only
    be sent to shard 0"). :meth:`FakeDiscord.push` applies it.

Servers (``events/gateway-events#guild-create``, ``#guild-delete``)
    GUILD_CREATE carries the whole guild object plus ``joined_at``, ``member_count``,
    ``channels`` and the other create-only fields (:meth:`FakeDiscord.guild_create`).
    GUILD_DELETE carries an unavailable guild object: ``unavailable: true`` for an outage;
    without ``unavailable`` the bot left or was removed (:meth:`FakeDiscord.guild_delete`).
    A removed bot no longer reaches the server's channels: a post in a channel of it is
    403 / 50001 "Missing Access" (``topics/opcodes-and-status-codes#json``).

CDN (``reference#signed-attachment-cdn-urls``)
    Attachment URLs are signed with an expiry (``ex``, hex seconds); after it the CDN
    answers 404 "This content is no longer available.".

Chaos (:class:`Chaos`)
    Seeded; answers each call, with probability ``rate``, with one of the refusals that
    kind of call can really get (see ``CHAOS_REFUSALS``): 429 (with a short
    ``retry_after``), a dead interaction token (which then stays dead), closed DMs, no
    mutual guild, an archived thread, missing permissions or access, a deleted channel
    or message, a request too large. Server errors (5xx) are left out: discord.py sleeps
    seconds on them by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
BOT_TOKEN = "fake-bot-token"

MIB = 1024 * 1024
DEFAULT_FILE_LIMIT = 10 * MIB
"""``reference#uploading-files``: the default per-file limit for everyone."""
REQUEST_CAP = 25 * MIB
INITIAL_RESPONSE_S = 3.0
TOKEN_TTL_S = 15 * 60.0
GLOBAL_PER_S = 50
NONCE_WINDOW_S = 5 * 60.0
EPHEMERAL = 1 << 6
DISCORD_EPOCH_MS = 1420070400000

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


class SimClock:
    """Wall-clock time plus an offset the tests move forward (no sleeping 15 minutes)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def snowflake_time(snowflake: int) -> float:
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


class Refusal(Exception):
    """One of Discord's error answers."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.body = body

    def response(self) -> web.Response:
        body: dict[str, Any] = self.body or {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return _json(body, status=self.status, headers=self.headers)


def unauthorized() -> Refusal:
    return Refusal(401, 0, "401: Unauthorized")


def unknown_interaction() -> Refusal:
    return Refusal(404, 10062, "Unknown interaction")


def already_acknowledged() -> Refusal:
    return Refusal(400, 40060, "Interaction has already been acknowledged")


def invalid_webhook_token() -> Refusal:
    return Refusal(401, 50027, "Invalid Webhook Token")


def unknown_webhook() -> Refusal:
    return Refusal(404, 10015, "Unknown Webhook")


def unknown_message() -> Refusal:
    return Refusal(404, 10008, "Unknown Message")


def unknown_channel() -> Refusal:
    return Refusal(404, 10003, "Unknown Channel")


def cannot_dm() -> Refusal:
    return Refusal(403, 50007, "Cannot send messages to this user")


def no_mutual_guilds() -> Refusal:
    return Refusal(403, 50278, "Cannot send messages to this user due to having no mutual guilds")


def archived_thread() -> Refusal:
    return Refusal(400, 50083, "Thread is archived")


def missing_permissions() -> Refusal:
    return Refusal(403, 50013, "Missing Permissions")


def missing_access() -> Refusal:
    return Refusal(403, 50001, "Missing Access")


def too_large() -> Refusal:
    return Refusal(413, 40005, "Request entity too large")


def empty_message() -> Refusal:
    return Refusal(400, 50006, "Cannot send an empty message")


def rate_limited(retry_after: float, *, scope: str, bucket: str | None = None) -> Refusal:
    is_global = scope == "global"
    headers = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Scope": scope,
        "Via": "1.1 google",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    else:
        headers["X-RateLimit-Limit"] = "1"
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset-After"] = f"{retry_after:.3f}"
        headers["X-RateLimit-Bucket"] = bucket or "chaos"
    message = "You are being rate limited." if is_global else "The resource is being rate limited."
    body = {"message": message, "retry_after": retry_after, "global": is_global}
    return Refusal(429, 0, message, headers=headers, body=body)


class FormErrors:
    """Collects 50035 errors as Discord nests them: path keys, then ``_errors``."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path: tuple[str | int, ...], value: Any, limit: int) -> None:
        if value is not None and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def raise_if_any(self) -> None:
        if self.tree:
            raise Refusal(400, 50035, "Invalid Form Body", errors=self.tree)


EMBED_LIMITS = {"title": 256, "description": 4096}


def check_embeds(embeds: list[dict[str, Any]], errors: FormErrors) -> None:
    errors.max_length(("embeds",), embeds, 10)
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            errors.max_length(("embeds", i, key), embed.get(key), limit)
            total += len(embed.get(key) or "")
        fields = embed.get("fields") or []
        errors.max_length(("embeds", i, "fields"), fields, 25)
        for j, item in enumerate(fields):
            errors.max_length(("embeds", i, "fields", j, "name"), item.get("name"), 256)
            errors.max_length(("embeds", i, "fields", j, "value"), item.get("value"), 1024)
            total += len(item.get("name") or "") + len(item.get("value") or "")
        footer = (embed.get("footer") or {}).get("text")
        errors.max_length(("embeds", i, "footer", "text"), footer, 2048)
        author = (embed.get("author") or {}).get("name")
        errors.max_length(("embeds", i, "author", "name"), author, 256)
        total += len(footer or "") + len(author or "")
    if total > 6000:
        errors.add(
            ("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )


def check_components(rows: list[dict[str, Any]], errors: FormErrors) -> None:
    errors.max_length(("components",), rows, 5)
    seen: set[str] = set()
    for i, row in enumerate(rows):
        children = row.get("components") or []
        selects = [c for c in children if c.get("type") in (3, 5, 6, 7, 8)]
        if selects and len(children) > 1:
            errors.add(("components", i, "components"), "BASE_TYPE_MAX_LENGTH", "Must be 1.")
        errors.max_length(("components", i, "components"), children, 5)
        for j, child in enumerate(children):
            path: tuple[str | int, ...] = ("components", i, "components", j)
            custom_id = child.get("custom_id")
            if custom_id is not None:
                if not 1 <= len(custom_id) <= 100:
                    errors.add((*path, "custom_id"), "BASE_TYPE_BAD_LENGTH", "Must be 1-100.")
                if custom_id in seen:
                    errors.add((*path, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", "Dup.")
                seen.add(custom_id)
            errors.max_length((*path, "label"), child.get("label"), 80)
            errors.max_length((*path, "placeholder"), child.get("placeholder"), 150)
            if child.get("type") == 3:
                options = child.get("options") or []
                if not 1 <= len(options) <= 25:
                    errors.add((*path, "options"), "BASE_TYPE_BAD_LENGTH", "Must be 1-25.")
                for k, option in enumerate(options):
                    errors.max_length((*path, "options", k, "label"), option.get("label"), 100)
                    errors.max_length((*path, "options", k, "value"), option.get("value"), 100)


def check_message(
    body: dict[str, Any],
    files: list[tuple[str, bytes]],
    *,
    file_limit: int,
    request_cap: int,
    editing: bool = False,
) -> None:
    """Discord's rules for a message body and its uploads; raises the refusal."""
    errors = FormErrors()
    errors.max_length(("content",), body.get("content"), 2000)
    check_embeds(body.get("embeds") or [], errors)
    check_components(body.get("components") or [], errors)
    nonce = body.get("nonce")
    if isinstance(nonce, str):
        errors.max_length(("nonce",), nonce, 25)
    errors.max_length(("attachments",), files, 10)
    errors.raise_if_any()
    if any(len(data) > file_limit for _name, data in files):
        raise too_large()
    if sum(len(data) for _name, data in files) > max(request_cap, file_limit):
        raise too_large()
    has_something = body.get("content") or body.get("embeds") or files or body.get("components")
    if not editing and not has_something:
        raise empty_message()


@dataclass
class Call:
    """One request as it reached the simulator, and how it was answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = 0.0
    status: int = 0
    code: int | None = None
    kind: str = ""

    @property
    def payload(self) -> Any:
        """The JSON body, whether sent plain or as multipart ``payload_json``."""
        return self.json


@dataclass
class SimInteraction:
    """An interaction Discord sent the bot (registered when dispatched)."""

    id: int
    token: str
    created_at: float
    user_id: int
    channel_id: int | None
    guild_id: int | None
    size_limit: int
    acked: bool = False
    ephemeral: bool = False
    dead: bool = False
    original: SimMessage | None = None


@dataclass
class SimMessage:
    """A message as people see it: where, for whom, and its latest content."""

    id: int
    channel_id: int
    kind: str
    """``interaction`` (the original response), ``followup``, ``channel`` or ``dm``."""
    private_to: int | None
    """The one user who sees it (ephemeral or DM); None: everyone in the channel."""
    body: dict[str, Any]
    files: list[str]
    token: str | None = None
    loading: bool = False
    deleted: bool = False
    nonce: str | None = None
    author: int = BOT_ID
    created_at: float = 0.0
    edits: int = 0

    @property
    def text(self) -> str:
        """Everything a person reads in it, flattened."""
        parts = [self.body.get("content") or ""]
        for embed in self.body.get("embeds") or []:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            parts += [f"{f.get('name')} {f.get('value')}" for f in embed.get("fields") or []]
            parts.append((embed.get("footer") or {}).get("text") or "")
        return "\n".join(p for p in parts if p)


CHAOS_REFUSALS: dict[str, tuple[Callable[[], Refusal], ...]] = {
    "callback": (unknown_interaction,),
    "edit_original": (invalid_webhook_token, unknown_webhook, unknown_message, archived_thread),
    "followup": (invalid_webhook_token, unknown_webhook, archived_thread, too_large),
    "channel_post": (
        missing_access,
        missing_permissions,
        unknown_channel,
        archived_thread,
        too_large,
    ),
    "delete_original": (invalid_webhook_token, unknown_message),
    "dm_open": (),
    "dm_post": (cannot_dm, no_mutual_guilds, too_large),
    "sync": (missing_access,),
    "gateway_bot": (),
    "me": (),
    "application": (),
}
"""Per kind of call, the refusals (besides 429) Discord can give it whatever the body."""

TOKEN_KILLERS = frozenset({10062, 50027, 10015})


@dataclass
class Chaos:
    """Seeded random refusals: ``rate`` of the calls get one their kind can really get."""

    seed: int
    rate: float = 0.2
    retry_after_s: float = 0.01
    rng: random.Random = field(init=False)
    refused: Counter[str] = field(default_factory=Counter)
    kinds: frozenset[str] | None = None
    """Only these kinds of call (None: all)."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def pick(self, kind: str, *, uploads: bool = False) -> Refusal | None:
        """A refusal for this call, or None; "too large" only for a call with files."""
        if self.kinds is not None and kind not in self.kinds:
            return None
        if self.rng.random() >= self.rate:
            return None
        choices: list[Callable[[], Refusal]] = [
            refusal
            for refusal in CHAOS_REFUSALS.get(kind, ())
            if uploads or refusal is not too_large
        ]
        choices.append(lambda: rate_limited(self.retry_after_s, scope="user", bucket=kind))
        refusal = self.rng.choice(choices)()
        self.refused[f"{kind}:{refusal.code or refusal.status}"] += 1
        return refusal


def shard_of(guild_id: int | None, num_shards: int) -> int:
    """The shard that gets a guild's events (``events/gateway#sharding``); DMs: shard 0."""
    if guild_id is None:
        return 0
    return (guild_id >> 22) % num_shards


def guild_of_event(event: str, data: dict[str, Any]) -> int | None:
    """The guild a DISPATCH belongs to: its ``guild_id``, or the guild object's own ``id``
    for GUILD_CREATE, GUILD_UPDATE and GUILD_DELETE (``events/gateway-events#guilds``)."""
    guild = data.get("guild_id")
    if guild is None and event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
        guild = data.get("id")
    return int(guild) if guild is not None else None


@dataclass
class GatewaySession:
    """One identified gateway connection and the shard it asked for."""

    ws: web.WebSocketResponse
    shard: tuple[int, int]
    """``[id, count]`` from IDENTIFY."""

    def gets(self, guild_id: int | None) -> bool:
        shard_id, count = self.shard
        return shard_of(guild_id, count) == shard_id


@dataclass
class Bucket:
    limit: int
    per_s: float
    used: int = 0
    window_start: float = 0.0


@dataclass
class FakeDiscord:
    """State of the simulated Discord; switches set refusals, ``chaos`` adds random ones."""

    clock: SimClock = field(default_factory=SimClock)
    calls: list[Call] = field(default_factory=list)
    interactions: dict[str, SimInteraction] = field(default_factory=dict)
    messages: list[SimMessage] = field(default_factory=list)
    dead_tokens: set[str] = field(default_factory=set)
    closed_dms: set[int] = field(default_factory=set)
    strangers: set[int] = field(default_factory=set)
    """Users who share no guild with the bot (their DMs answer 50278)."""
    forbidden_channels: set[int] = field(default_factory=set)
    no_access_channels: set[int] = field(default_factory=set)
    archived_threads: set[int] = field(default_factory=set)
    deleted_channels: set[int] = field(default_factory=set)
    removed_from: set[int] = field(default_factory=set)
    """Guilds the bot was removed from (posts in their channels answer 50001)."""
    channel_limits: dict[int, int] = field(default_factory=dict)
    request_cap: int = REQUEST_CAP
    route_limits: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Per-route limits by route key (e.g. ``"POST /channels/{channel_id}/messages"``)."""
    global_per_s: int = GLOBAL_PER_S
    recommended_shards: int = 1
    chaos: Chaos | None = None
    cdn_files: dict[str, bytes] = field(default_factory=dict)
    hold_followups: asyncio.Event | None = None
    """While set, follow-ups hang unanswered and unrecorded (a hub dies meanwhile)."""
    url: str = ""
    identified: list[dict[str, Any]] = field(default_factory=list)
    gateways: list[GatewaySession] = field(default_factory=list)
    """The connected, identified sessions (a closed one leaves the list)."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1600000000000000000))
    _dm_channels: dict[int, int] = field(default_factory=dict)
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    _global: Bucket = field(default_factory=lambda: Bucket(GLOBAL_PER_S, 1.0))

    @property
    def api(self) -> str:
        return f"{self.url}/api/v10"

    def cdn_url(self, name: str, *, ttl_s: float = 24 * 3600) -> str:
        expires = int(self.clock.now() + ttl_s) // 60 * 60
        return f"{self.url}/cdn/attachments/{CHANNEL_ID}/{name}?ex={expires:x}&is=0&hm=abc"

    @property
    def gateway_url(self) -> str:
        return f"{self.url.replace('http://', 'ws://')}/gateway"

    def new_id(self) -> int:
        return next(self._ids)

    def is_dm_channel(self, channel: str | int | None) -> bool:
        return channel is not None and int(channel) in self._dm_channels.values()

    # interactions

    def receive(self, payload: dict[str, Any]) -> SimInteraction:
        """Register an INTERACTION_CREATE as sent by Discord (its token becomes valid)."""
        user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
        interaction = SimInteraction(
            id=int(payload["id"]),
            token=payload["token"],
            created_at=snowflake_time(int(payload["id"])),
            user_id=int(user.get("id") or 0),
            channel_id=int(payload["channel_id"]) if payload.get("channel_id") else None,
            guild_id=int(payload["guild_id"]) if payload.get("guild_id") else None,
            size_limit=int(payload.get("attachment_size_limit") or DEFAULT_FILE_LIMIT),
        )
        self.interactions[interaction.token] = interaction
        return interaction

    def expire(self, token: str) -> None:
        """Age one interaction past its 15 minutes (the others keep their time)."""
        self.interactions[token].created_at -= TOKEN_TTL_S + 1

    async def push(self, event: str, data: dict[str, Any]) -> list[tuple[int, int]]:
        """Send a gateway DISPATCH (text frames, uncompressed) to the sessions of its shard.

        A guild's event goes to the sessions whose shard is the guild's, one of no guild
        to shard 0 (``events/gateway#sharding``). Returns the shards it was sent to.
        """
        if event == "INTERACTION_CREATE":
            self.receive(data)
        guild = guild_of_event(event, data)
        sent = []
        for session in list(self.gateways):
            if not session.gets(guild) or session.ws.closed:
                continue
            try:
                await session.ws.send_str(json.dumps({"op": 0, "t": event, "s": 2, "d": data}))
            except ConnectionResetError:
                continue  # the bot's process is gone; its socket not closed here yet
            sent.append(session.shard)
        return sent

    # servers

    def guild_create(self, guild_id: int = GUILD_ID) -> dict[str, Any]:
        """The GUILD_CREATE the bot gets for a server it is in (after READY, or on joining)."""
        self.removed_from.discard(guild_id)
        everyone = {
            "id": str(guild_id),
            "name": "@everyone",
            "color": 0,
            "hoist": False,
            "position": 0,
            "permissions": "1071698660929",
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        return {
            "id": str(guild_id),
            "name": "music makers",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(OTHER_USER_ID),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [everyone],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": "2026-11-01T09:00:00.000000+00:00",
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "members": [],
            "channels": [],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
        }

    def guild_delete(self, guild_id: int = GUILD_ID, *, outage: bool = False) -> dict[str, Any]:
        """The GUILD_DELETE of a server outage, or of the bot's removal (then remembered)."""
        if outage:
            return {"id": str(guild_id), "unavailable": True}
        self.removed_from.add(guild_id)
        return {"id": str(guild_id)}

    def guild_of(self, channel: int) -> int | None:
        """The guild of a channel the simulator has seen an interaction in."""
        for interaction in self.interactions.values():
            if interaction.channel_id == channel:
                return interaction.guild_id
        return None

    # queries

    def find(self, method: str, contains: str) -> list[Call]:
        """Calls Discord accepted (refused ones are in ``refused``)."""
        return [
            c
            for c in self.calls
            if c.method == method and contains in c.path and 200 <= c.status < 300
        ]

    def refused(self, code: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.status >= 400 and (code is None or c.code == code)]

    def webhook_calls(self) -> list[Call]:
        return [c for c in self.calls if "/webhooks/" in c.path or "/interactions/" in c.path]

    def seen_by(self, user_id: int) -> list[SimMessage]:
        """Messages this user can read: theirs privately, and public ones (not deleted)."""
        return [
            m
            for m in self.messages
            if not m.deleted and (m.private_to is None or m.private_to == user_id)
        ]

    def of_interaction(self, token: str) -> list[SimMessage]:
        return [m for m in self.messages if m.token == token]

    def message(self, channel_id: int, body: dict[str, Any], files: dict[str, Any]) -> Any:
        """A message object as Discord returns it."""
        return self._message_json(
            SimMessage(
                id=self.new_id(),
                channel_id=channel_id,
                kind="channel",
                private_to=None,
                body=body,
                files=[name for name, _ in files.values()],
            )
        )

    def _message_json(self, message: SimMessage) -> dict[str, Any]:
        body = message.body
        attachments = [
            {
                "id": str(self.new_id()),
                "filename": name,
                "size": 0,
                "url": f"{self.url}/cdn/attachments/{message.channel_id}/{name}",
                "proxy_url": f"{self.url}/cdn/attachments/{message.channel_id}/{name}",
            }
            for name in message.files
        ]
        flags = int(body.get("flags") or 0)
        if message.kind in ("interaction", "followup") and message.private_to is not None:
            flags |= EPHEMERAL
        return {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
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
            "flags": flags,
            "nonce": message.nonce,
            "webhook_id": str(APP_ID) if message.token else None,
        }

    # rules

    def _rate_limit(
        self, key: str, major: str | None, headers: dict[str, str], *, is_interaction: bool
    ) -> None:
        now = self.clock.now()
        if not is_interaction:
            bucket = self._global
            bucket.limit = self.global_per_s
            if now - bucket.window_start >= bucket.per_s:
                bucket.window_start, bucket.used = now, 0
            if bucket.used >= bucket.limit:
                raise rate_limited(bucket.window_start + bucket.per_s - now, scope="global")
            bucket.used += 1
        limit = self.route_limits.get(key)
        if limit is None:
            return
        bucket = self._buckets.setdefault(f"{key}:{major}", Bucket(*limit))
        if now - bucket.window_start >= bucket.per_s:
            bucket.window_start, bucket.used = now, 0
        reset_after = bucket.window_start + bucket.per_s - now
        name = f"{abs(hash(key)) % 10**8:08x}"
        if bucket.used >= bucket.limit:
            raise rate_limited(reset_after, scope="user", bucket=name)
        bucket.used += 1
        headers.update(
            {
                "X-RateLimit-Limit": str(bucket.limit),
                "X-RateLimit-Remaining": str(bucket.limit - bucket.used),
                "X-RateLimit-Reset": f"{now + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": name,
            }
        )

    def _live(self, token: str, *, callback: bool = False) -> SimInteraction:
        interaction = self.interactions.get(token)
        if interaction is None:
            raise unknown_interaction() if callback else unknown_webhook()
        age = self.clock.now() - interaction.created_at
        if callback:
            if interaction.dead or age > INITIAL_RESPONSE_S:
                raise unknown_interaction()
            if interaction.acked:
                raise already_acknowledged()
            return interaction
        if interaction.dead or token in self.dead_tokens or age > TOKEN_TTL_S:
            raise invalid_webhook_token()
        if not interaction.acked:
            raise unknown_webhook()
        return interaction

    def _addressed(self, interaction: SimInteraction, ref: str) -> SimMessage:
        """The message a webhook route names: ``@original`` or one of the interaction's
        follow-ups by id (``webhook#edit-webhook-message``, ``#delete-webhook-message``);
        a deleted or unknown one answers 10008 Unknown Message."""
        if ref == "@original":
            message = interaction.original
        else:
            wanted = int(ref)
            message = next(
                (m for m in self.of_interaction(interaction.token) if m.id == wanted), None
            )
        if message is None or message.deleted:
            raise unknown_message()
        return message

    def _post(
        self,
        channel_id: int,
        body: dict[str, Any],
        files: list[tuple[str, bytes]],
        *,
        kind: str,
        private_to: int | None,
        file_limit: int,
        token: str | None = None,
    ) -> SimMessage:
        check_message(body, files, file_limit=file_limit, request_cap=self.request_cap)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            for earlier in self.messages:
                fresh = self.clock.now() - earlier.created_at < NONCE_WINDOW_S
                if earlier.nonce == str(nonce) and earlier.channel_id == channel_id and fresh:
                    return earlier
        message = SimMessage(
            id=self.new_id(),
            channel_id=channel_id,
            kind=kind,
            private_to=private_to,
            body=body,
            files=[name for name, _ in files],
            token=token,
            nonce=str(nonce) if nonce is not None else None,
            created_at=self.clock.now(),
        )
        self.messages.append(message)
        return message


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with the exact content type Discord sends (discord.py compares it verbatim)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def _read(request: web.Request, call: Call) -> None:
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


Handler = Callable[[web.Request, Call, dict[str, str]], Awaitable[web.StreamResponse]]


def make_app(fake: FakeDiscord) -> web.Application:
    routes = web.RouteTableDef()

    def route(
        method: str, path: str, *, kind: str, bot_auth: bool = True, interaction: bool = False
    ) -> Callable[[Handler], Handler]:
        key = f"{method} {path}"

        def wrap(handler: Handler) -> Handler:
            async def serve(request: web.Request) -> web.StreamResponse:
                call = Call(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    at=time.perf_counter(),
                    kind=kind,
                )
                if kind == "followup" and fake.hold_followups is not None:
                    await fake.hold_followups.wait()
                    return _json({"message": "held", "code": 0}, status=500)
                await _read(request, call)
                fake.calls.append(call)
                headers: dict[str, str] = {}
                try:
                    if bot_auth and request.headers.get("Authorization") != f"Bot {BOT_TOKEN}":
                        raise unauthorized()
                    major = request.match_info.get("channel") or request.match_info.get("token")
                    fake._rate_limit(key, major, headers, is_interaction=interaction)
                    chaos = fake.chaos
                    channel = request.match_info.get("channel")
                    if kind == "channel_post" and fake.is_dm_channel(channel):
                        call.kind = "dm_post"
                    refusal = chaos.pick(call.kind, uploads=bool(call.files)) if chaos else None
                    if refusal is not None:
                        token = request.match_info.get("token")
                        if refusal.code in TOKEN_KILLERS and token in fake.interactions:
                            fake.interactions[token].dead = True
                        raise refusal
                    response = await handler(request, call, headers)
                except Refusal as refused:
                    call.status, call.code = refused.status, refused.code
                    return refused.response()
                call.status = response.status
                for name, value in headers.items():
                    response.headers[name] = value
                return response

            methods = {
                "GET": routes.get,
                "POST": routes.post,
                "PUT": routes.put,
                "DELETE": routes.delete,
            }
            methods.get(method, routes.patch)(
                "/api/v10" + path.replace("{channel_id}", "{channel}")
            )(serve)
            return handler

        return wrap

    @route("GET", "/users/@me", kind="me")
    async def me(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        return _json(BOT_USER)

    @route("GET", "/oauth2/applications/@me", kind="application")
    async def application(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
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

    @route("GET", "/gateway/bot", kind="gateway_bot")
    async def gateway_bot(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        return _json(
            {
                "url": fake.gateway_url,
                "shards": fake.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def sync(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        errors = FormErrors()
        errors.max_length((), call.json or [], 100)
        for i, command in enumerate(call.json or []):
            errors.max_length((i, "name"), command.get("name"), 32)
            errors.max_length((i, "description"), command.get("description"), 100)
        errors.raise_if_any()
        out = [
            {
                "description": "",
                **command,
                "id": str(fake.new_id()),
                "application_id": request.match_info["app"],
                "version": "1",
                "default_member_permissions": command.get("default_member_permissions"),
            }
            for command in call.json or []
        ]
        return _json(out)

    route("PUT", "/applications/{app}/commands", kind="sync")(sync)
    route("PUT", "/applications/{app}/guilds/{guild}/commands", kind="sync")(sync)

    @route(
        "POST",
        "/interactions/{id}/{token}/callback",
        kind="callback",
        bot_auth=False,
        interaction=True,
    )
    async def callback(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        interaction = fake._live(request.match_info["token"], callback=True)
        body = call.json or {}
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        kind = body.get("type")
        if kind == 5 and flags & ~EPHEMERAL:
            errors = FormErrors()
            errors.add(("data", "flags"), "INTERACTION_FLAGS", "Only EPHEMERAL may be set.")
            errors.raise_if_any()
        private = interaction.user_id if flags & EPHEMERAL else None
        channel = interaction.channel_id or 0
        message: SimMessage | None = None
        if kind == 4:
            files = list(call.files.values())
            message = fake._post(
                channel,
                data,
                files,
                kind="interaction",
                private_to=private,
                file_limit=interaction.size_limit,
                token=interaction.token,
            )
        elif kind == 5:
            message = SimMessage(
                id=fake.new_id(),
                channel_id=channel,
                kind="interaction",
                private_to=private,
                body={},
                files=[],
                token=interaction.token,
                loading=True,
                created_at=fake.clock.now(),
            )
            fake.messages.append(message)
        interaction.acked = True
        interaction.ephemeral = bool(flags & EPHEMERAL)
        interaction.original = message
        resource: dict[str, Any] = {"type": kind}
        if kind == 4 and message is not None:
            resource["message"] = fake._message_json(message)
        return _json(
            {
                "interaction": {
                    "id": request.match_info["id"],
                    "type": 2,
                    "response_message_id": str(message.id) if message else None,
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(flags & EPHEMERAL),
                },
                "resource": resource,
            }
        )

    @route(
        "PATCH",
        "/webhooks/{app}/{token}/messages/{message}",
        kind="edit_original",
        bot_auth=False,
        interaction=True,
    )
    async def edit_original(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        interaction = fake._live(request.match_info["token"])
        original = fake._addressed(interaction, request.match_info["message"])
        if original.channel_id in fake.archived_threads:
            raise archived_thread()
        body = call.json or {}
        files = list(call.files.values())
        check_message(
            body,
            files,
            file_limit=interaction.size_limit,
            request_cap=fake.request_cap,
            editing=True,
        )
        merged = {**original.body, **body}
        original.body = merged
        if files or "attachments" in body:
            kept = {str(a.get("filename")) for a in body.get("attachments") or []}
            original.files = [n for n in original.files if n in kept] + [n for n, _ in files]
        original.loading = False
        original.edits += 1
        return _json(fake._message_json(original))

    @route(
        "DELETE",
        "/webhooks/{app}/{token}/messages/{message}",
        kind="delete_original",
        bot_auth=False,
        interaction=True,
    )
    async def delete_original(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        interaction = fake._live(request.match_info["token"])
        message = fake._addressed(interaction, request.match_info["message"])
        message.deleted = True
        if message is interaction.original:
            interaction.original = None
        return web.Response(status=204)

    @route("POST", "/webhooks/{app}/{token}", kind="followup", bot_auth=False, interaction=True)
    async def followup(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        interaction = fake._live(request.match_info["token"])
        channel = interaction.channel_id or 0
        if channel in fake.archived_threads:
            raise archived_thread()
        body = call.json or {}
        files = list(call.files.values())
        original = interaction.original
        if original is not None and original.loading:
            # the deprecated path: the loading response is edited, its ephemeral state kept
            check_message(
                body, files, file_limit=interaction.size_limit, request_cap=fake.request_cap
            )
            original.body, original.files, original.loading = body, [n for n, _ in files], False
            return _json(fake._message_json(original))
        flags = int(body.get("flags") or 0)
        message = fake._post(
            channel,
            body,
            files,
            kind="followup",
            private_to=interaction.user_id if flags & EPHEMERAL else None,
            file_limit=interaction.size_limit,
            token=interaction.token,
        )
        return _json(fake._message_json(message))

    @route("POST", "/users/@me/channels", kind="dm_open")
    async def open_dm(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        user = int((call.json or {})["recipient_id"])
        channel = fake._dm_channels.setdefault(user, fake.new_id())
        return _json(
            {
                "id": str(channel),
                "type": 1,
                "last_message_id": None,
                "recipients": [{**BOT_USER, "id": str(user), "bot": False, "username": "someone"}],
            }
        )

    @route("POST", "/channels/{channel_id}/messages", kind="channel_post")
    async def post_message(request: web.Request, call: Call, _h: dict[str, str]) -> web.Response:
        channel = int(request.match_info["channel"])
        dm_owner = {c: u for u, c in fake._dm_channels.items()}.get(channel)
        body = call.json or {}
        files = list(call.files.values())
        if dm_owner is not None:
            if dm_owner in fake.closed_dms:
                raise cannot_dm()
            if dm_owner in fake.strangers:
                raise no_mutual_guilds()
            message = fake._post(
                channel, body, files, kind="dm", private_to=dm_owner, file_limit=DEFAULT_FILE_LIMIT
            )
            return _json(fake._message_json(message))
        if channel in fake.deleted_channels:
            raise unknown_channel()
        if channel in fake.no_access_channels or fake.guild_of(channel) in fake.removed_from:
            raise missing_access()
        if channel in fake.forbidden_channels:
            raise missing_permissions()
        if channel in fake.archived_threads:
            raise archived_thread()
        limit = fake.channel_limits.get(channel, DEFAULT_FILE_LIMIT)
        message = fake._post(
            channel, body, files, kind="channel", private_to=None, file_limit=limit
        )
        return _json(fake._message_json(message))

    @routes.get("/gateway")
    async def gateway(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        session: GatewaySession | None = None
        async for message in ws:
            frame = json.loads(message.data)
            if frame["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif frame["op"] == 2:
                fake.identified.append(frame["d"])
                if frame["d"].get("token") != BOT_TOKEN:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                shard = frame["d"].get("shard", [0, 1])
                if not 0 <= shard[0] < shard[1]:
                    await ws.close(code=4010, message=b"Invalid shard.")
                    break
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
                session = GatewaySession(ws, (int(shard[0]), int(shard[1])))
                fake.gateways.append(session)
        if session is not None:
            fake.gateways.remove(session)
        return ws

    @routes.get("/cdn/attachments/{channel}/{name}")
    async def cdn(request: web.Request) -> web.Response:
        call = Call("GET", request.path, dict(request.query), dict(request.headers), kind="cdn")
        call.at = time.perf_counter()
        fake.calls.append(call)
        data = fake.cdn_files.get(request.match_info["name"])
        expires = request.query.get("ex")
        expired = expires is not None and int(expires, 16) < fake.clock.now()
        if data is None or expired:
            call.status = 404
            return web.Response(status=404, text="This content is no longer available.")
        call.status = 200
        return web.Response(body=data, content_type="audio/wav")

    app = web.Application(client_max_size=256 * MIB)
    app.add_routes(routes)
    return app


@contextlib.asynccontextmanager
async def running_fake_discord(
    cdn_files: dict[str, Path] | None = None, *, fake: FakeDiscord | None = None
) -> AsyncIterator[FakeDiscord]:
    fake = fake or FakeDiscord()
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


__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_TOKEN",
    "BOT_USER",
    "CHANNEL_ID",
    "CHAOS_REFUSALS",
    "DEFAULT_FILE_LIMIT",
    "GUILD_ID",
    "OTHER_USER_ID",
    "ROLE_ID",
    "USER_ID",
    "Call",
    "Chaos",
    "FakeDiscord",
    "GatewaySession",
    "Refusal",
    "SimClock",
    "SimInteraction",
    "SimMessage",
    "check_message",
    "guild_of_event",
    "make_app",
    "running_fake_discord",
    "shard_of",
]

"""The Discord simulator refuses what Discord refuses, with Discord's documented answers.

Each test breaks one rule of ``tests/fakes/discord.py``'s docstring and checks the status,
the JSON error code (and the nested ``errors`` of a 50035), and the headers. Requests go
over loopback with aiohttp, or with discord.py's own HTTP client where it matters that
discord.py reads the answer as it reads Discord's (rate limits, the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio

from stemhub.testing import patience
from tests.discord import _payloads as p
from tests.fakes.discord import (
    APP_ID,
    BOT_TOKEN,
    CHANNEL_ID,
    CHAOS_REFUSALS,
    DEFAULT_FILE_LIMIT,
    GUILD_ID,
    USER_ID,
    Chaos,
    FakeDiscord,
    running_fake_discord,
)

BOT = {"Authorization": f"Bot {BOT_TOKEN}"}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[FakeDiscord]:
    async with running_fake_discord() as fake:
        yield fake


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    files: dict[str, bytes] | None = None,
) -> tuple[int, Any, Any]:
    """One request; returns (status, JSON body or None, headers)."""
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if files:
        form = aiohttp.FormData()
        form.add_field("payload_json", json.dumps(body or {}), content_type="application/json")
        for index, (name, data) in enumerate(files.items()):
            form.add_field(f"files[{index}]", io.BytesIO(data), filename=name)
        kwargs["data"] = form
    elif body is not None:
        kwargs["json"] = body
    async with http.request(method, url, **kwargs) as response:
        data = await response.json() if response.content_type == "application/json" else None
        return response.status, data, response.headers


@contextlib.asynccontextmanager
async def discord_http(sim: FakeDiscord) -> AsyncIterator[discord.http.HTTPClient]:
    """discord.py's REST client, pointed at the simulator."""
    original = discord.http.Route.BASE
    discord.http.Route.BASE = sim.api
    client = discord.http.HTTPClient(aiohttp.TCPConnector())
    try:
        yield client
    finally:
        await client.close()
        discord.http.Route.BASE = original


def command(sim: FakeDiscord, **base: Any) -> dict[str, Any]:
    payload = p.split_command(**base)
    sim.receive(payload)
    return payload


def callback_url(sim: FakeDiscord, payload: dict[str, Any]) -> str:
    return f"{sim.api}/interactions/{payload['id']}/{payload['token']}/callback"


def webhook_url(sim: FakeDiscord, payload: dict[str, Any], message: str = "@original") -> str:
    return f"{sim.api}/webhooks/{APP_ID}/{payload['token']}/messages/{message}"


def post_url(sim: FakeDiscord, channel: int = CHANNEL_ID) -> str:
    return f"{sim.api}/channels/{channel}/messages"


async def deferred(sim: FakeDiscord, http: aiohttp.ClientSession, **base: Any) -> dict[str, Any]:
    payload = command(sim, **base)
    status, _body, _h = await send(http, "POST", callback_url(sim, payload), {"type": 5})
    assert status == 200
    return payload


def form_error(body: dict[str, Any], *path: str) -> str:
    """The first ``_errors`` code at ``path`` of a 50035 answer."""
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body", body
    node = body["errors"]
    for key in path:
        node = node[key]
    return str(node["_errors"][0]["code"])


# authorization


async def test_bot_routes_need_the_bot_token(sim: FakeDiscord, http: aiohttp.ClientSession) -> None:
    for headers in ({}, {"Authorization": "Bot someone-else"}, {"Authorization": BOT_TOKEN}):
        status, body, _h = await send(http, "GET", f"{sim.api}/users/@me", headers=headers)
        assert (status, body) == (401, {"message": "401: Unauthorized", "code": 0})
        status, body, _h = await send(
            http, "POST", post_url(sim), {"content": "x"}, headers=headers
        )
        assert status == 401
    status, _body, _h = await send(http, "GET", f"{sim.api}/users/@me", headers=BOT)
    assert status == 200


async def test_interaction_routes_go_by_the_token_in_their_path(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = command(sim)
    status, _body, _h = await send(http, "POST", callback_url(sim, payload), {"type": 5})
    assert status == 200
    never_sent = p.split_command()
    status, body, _h = await send(http, "POST", callback_url(sim, never_sent), {"type": 5})
    assert (status, body["code"]) == (404, 10062)


# message bodies and embeds


async def test_content_over_2000_characters(sim: FakeDiscord, http: aiohttp.ClientSession) -> None:
    status, body, _h = await send(http, "POST", post_url(sim), {"content": "x" * 2001}, headers=BOT)
    assert status == 400
    assert form_error(body, "content") == "BASE_TYPE_MAX_LENGTH"
    status, _body, _h = await send(
        http, "POST", post_url(sim), {"content": "x" * 2000}, headers=BOT
    )
    assert status == 200


def _embed(**over: Any) -> dict[str, Any]:
    return {"title": "t", "description": "d", **over}


@pytest.mark.parametrize(
    ("embeds", "path", "code"),
    [
        ([_embed(title="x" * 257)], ("embeds", "0", "title"), "BASE_TYPE_MAX_LENGTH"),
        ([_embed(description="x" * 4097)], ("embeds", "0", "description"), "BASE_TYPE_MAX_LENGTH"),
        (
            [_embed(fields=[{"name": "n", "value": "v"}] * 26)],
            ("embeds", "0", "fields"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [_embed(fields=[{"name": "x" * 257, "value": "v"}])],
            ("embeds", "0", "fields", "0", "name"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [_embed(fields=[{"name": "n", "value": "x" * 1025}])],
            ("embeds", "0", "fields", "0", "value"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [_embed(footer={"text": "x" * 2049})],
            ("embeds", "0", "footer", "text"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [_embed(author={"name": "x" * 257})],
            ("embeds", "0", "author", "name"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        ([_embed(description="x" * 3500)] * 2, ("embeds",), "MAX_EMBED_SIZE_EXCEEDED"),
        ([_embed()] * 11, ("embeds",), "BASE_TYPE_MAX_LENGTH"),
    ],
)
async def test_embed_limits(
    sim: FakeDiscord,
    http: aiohttp.ClientSession,
    embeds: list[dict[str, Any]],
    path: tuple[str, ...],
    code: str,
) -> None:
    status, body, _h = await send(http, "POST", post_url(sim), {"embeds": embeds}, headers=BOT)
    assert status == 400
    assert form_error(body, *path) == code


def _button(custom_id: str, label: str = "b") -> dict[str, Any]:
    return {"type": 2, "style": 2, "custom_id": custom_id, "label": label}


@pytest.mark.parametrize(
    ("rows", "path"),
    [
        ([{"type": 1, "components": [_button(f"b{i}")]} for i in range(6)], ("components",)),
        (
            [{"type": 1, "components": [_button(f"b{i}") for i in range(6)]}],
            ("components", "0", "components"),
        ),
        (
            [{"type": 1, "components": [_button("x" * 101)]}],
            ("components", "0", "components", "0", "custom_id"),
        ),
        (
            [{"type": 1, "components": [_button("a", label="x" * 81)]}],
            ("components", "0", "components", "0", "label"),
        ),
        (
            [{"type": 1, "components": [_button("a"), _button("a")]}],
            ("components", "0", "components", "1", "custom_id"),
        ),
        (
            [
                {
                    "type": 1,
                    "components": [
                        {
                            "type": 3,
                            "custom_id": "s",
                            "options": [{"label": str(i), "value": str(i)} for i in range(26)],
                        }
                    ],
                }
            ],
            ("components", "0", "components", "0", "options"),
        ),
    ],
)
async def test_component_limits(
    sim: FakeDiscord, http: aiohttp.ClientSession, rows: list[Any], path: tuple[str, ...]
) -> None:
    body_in = {"content": "x", "components": rows}
    status, body, _h = await send(http, "POST", post_url(sim), body_in, headers=BOT)
    assert status == 400
    form_error(body, *path)


async def test_an_empty_message_is_refused(sim: FakeDiscord, http: aiohttp.ClientSession) -> None:
    status, body, _h = await send(http, "POST", post_url(sim), {"content": ""}, headers=BOT)
    assert (status, body["code"]) == (400, 50006)


# attachments


async def test_file_limits_follow_the_context(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    boosted = await deferred(sim, http, size_limit=50 * 1024 * 1024)
    big = {"big.wav": b"\0" * (DEFAULT_FILE_LIMIT + 1)}
    status, _body, _h = await send(http, "PATCH", webhook_url(sim, boosted), {}, files=big)
    assert status == 200, "a boosted guild's interaction takes the file"
    status, body, _h = await send(http, "POST", post_url(sim), {}, headers=BOT, files=big)
    assert (status, body["code"]) == (413, 40005), "a bot post is held to 10 MiB"
    status, dm, _h = await send(
        http, "POST", f"{sim.api}/users/@me/channels", {"recipient_id": USER_ID}, headers=BOT
    )
    status, body, _h = await send(
        http, "POST", post_url(sim, int(dm["id"])), {}, headers=BOT, files=big
    )
    assert (status, body["code"]) == (413, 40005), "a DM is held to 10 MiB"
    plain = await deferred(sim, http)
    status, body, _h = await send(http, "PATCH", webhook_url(sim, plain), {}, files=big)
    assert (status, body["code"]) == (413, 40005), "an unboosted interaction too"


async def test_the_request_cap(sim: FakeDiscord, http: aiohttp.ClientSession) -> None:
    sim.request_cap = 1000
    sim.channel_limits[CHANNEL_ID] = 700
    files = {"a.wav": b"\0" * 600, "b.wav": b"\0" * 600}
    status, body, _h = await send(http, "POST", post_url(sim), {}, headers=BOT, files=files)
    assert (status, body["code"]) == (413, 40005)
    status, _body, _h = await send(
        http, "POST", post_url(sim), {}, headers=BOT, files={"a.wav": b"\0" * 600}
    )
    assert status == 200


# nonces


async def test_nonce_rules(sim: FakeDiscord, http: aiohttp.ClientSession) -> None:
    long = {"content": "x", "nonce": "n" * 26}
    status, body, _h = await send(http, "POST", post_url(sim), long, headers=BOT)
    assert status == 400 and form_error(body, "nonce") == "BASE_TYPE_MAX_LENGTH"
    once = {"content": "x", "nonce": "n" * 25, "enforce_nonce": True}
    _s, first, _h = await send(http, "POST", post_url(sim), once, headers=BOT)
    _s, second, _h = await send(http, "POST", post_url(sim), once, headers=BOT)
    assert first["id"] == second["id"]
    loose = {"content": "y", "nonce": "m"}
    _s, third, _h = await send(http, "POST", post_url(sim), loose, headers=BOT)
    _s, fourth, _h = await send(http, "POST", post_url(sim), loose, headers=BOT)
    assert third["id"] != fourth["id"], "without enforce_nonce Discord creates both"
    assert len(sim.messages) == 3


# interactions: 3 seconds, once, 15 minutes


async def test_the_initial_response_comes_within_3_seconds(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = command(sim)
    sim.clock.advance(3.5)
    status, body, _h = await send(http, "POST", callback_url(sim, payload), {"type": 5})
    assert (status, body) == (404, {"message": "Unknown interaction", "code": 10062})


async def test_an_interaction_is_answered_once(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = await deferred(sim, http)
    status, body, _h = await send(http, "POST", callback_url(sim, payload), {"type": 5})
    assert (status, body["code"]) == (400, 40060)


async def test_a_defer_carries_only_the_ephemeral_flag(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = command(sim)
    defer = {"type": 5, "data": {"flags": 64 | 4}}
    status, body, _h = await send(http, "POST", callback_url(sim, payload), defer)
    assert status == 400
    form_error(body, "data", "flags")


async def test_the_token_lives_15_minutes(sim: FakeDiscord, http: aiohttp.ClientSession) -> None:
    payload = await deferred(sim, http)
    sim.clock.advance(14 * 60)
    status, _body, _h = await send(http, "PATCH", webhook_url(sim, payload), {"content": "ok"})
    assert status == 200
    sim.clock.advance(61)
    for method, url in (
        ("PATCH", webhook_url(sim, payload)),
        ("POST", f"{sim.api}/webhooks/{APP_ID}/{payload['token']}"),
    ):
        status, body, _h = await send(http, method, url, {"content": "late"})
        assert (status, body) == (401, {"message": "Invalid Webhook Token", "code": 50027})


async def test_webhooks_of_unknown_or_unanswered_interactions(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    unanswered = command(sim)
    status, body, _h = await send(http, "PATCH", webhook_url(sim, unanswered), {"content": "x"})
    assert (status, body["code"]) == (404, 10015)
    unknown = p.split_command()
    status, body, _h = await send(http, "PATCH", webhook_url(sim, unknown), {"content": "x"})
    assert (status, body["code"]) == (404, 10015)


async def test_a_deleted_response_is_an_unknown_message(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = await deferred(sim, http)
    async with http.delete(webhook_url(sim, payload)) as response:
        assert response.status == 204
    status, body, _h = await send(http, "PATCH", webhook_url(sim, payload), {"content": "x"})
    assert (status, body["code"]) == (404, 10008)


async def test_a_followup_is_deleted_by_its_id_and_the_response_stays(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = await deferred(sim, http)
    # answered first: a follow-up on a loading response would be that response
    status, _body, _h = await send(http, "PATCH", webhook_url(sim, payload), {"content": "done"})
    assert status == 200
    url = f"{sim.api}/webhooks/{APP_ID}/{payload['token']}"
    status, followup, _h = await send(http, "POST", url, {"content": "later"})
    assert status == 200
    async with http.delete(webhook_url(sim, payload, followup["id"])) as response:
        assert response.status == 204
    status, body, _h = await send(http, "PATCH", webhook_url(sim, payload), {"content": "x"})
    assert status == 200, "the response itself is still there"
    gone = webhook_url(sim, payload, followup["id"])
    status, body, _h = await send(http, "PATCH", gone, {"content": "x"})
    assert (status, body["code"]) == (404, 10008)


async def test_a_followup_on_a_loading_response_edits_it_and_keeps_it_private(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = command(sim)
    defer = {"type": 5, "data": {"flags": 64}}
    await send(http, "POST", callback_url(sim, payload), defer)
    url = f"{sim.api}/webhooks/{APP_ID}/{payload['token']}"
    status, body, _h = await send(http, "POST", url, {"content": "public?", "flags": 0})
    assert status == 200 and body["flags"] & 64
    (message,) = sim.of_interaction(payload["token"])
    assert message.private_to == USER_ID and message.text == "public?"


# channels and DMs


@pytest.mark.parametrize(
    ("switch", "status", "code"),
    [
        ("forbidden_channels", 403, 50013),
        ("no_access_channels", 403, 50001),
        ("archived_threads", 400, 50083),
        ("deleted_channels", 404, 10003),
    ],
)
async def test_channel_refusals(
    sim: FakeDiscord, http: aiohttp.ClientSession, switch: str, status: int, code: int
) -> None:
    getattr(sim, switch).add(CHANNEL_ID)
    got, body, _h = await send(http, "POST", post_url(sim), {"content": "x"}, headers=BOT)
    assert (got, body["code"]) == (status, code)


async def test_a_server_that_removed_the_bot_is_out_of_its_reach(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    sim.receive(p.split_command())  # the simulator learns the channel's server
    assert sim.guild_delete(outage=True) == {"id": str(GUILD_ID), "unavailable": True}
    got, _body, _h = await send(http, "POST", post_url(sim), {"content": "x"}, headers=BOT)
    assert got == 200, "an outage is not a removal"
    assert sim.guild_delete() == {"id": str(GUILD_ID)}, "no unavailable field: removed"
    got, body, _h = await send(http, "POST", post_url(sim), {"content": "x"}, headers=BOT)
    assert (got, body["code"]) == (403, 50001)
    assert sim.guild_create()["id"] == str(GUILD_ID)  # invited again
    got, _body, _h = await send(http, "POST", post_url(sim), {"content": "x"}, headers=BOT)
    assert got == 200


@pytest.mark.parametrize(("switch", "code"), [("closed_dms", 50007), ("strangers", 50278)])
async def test_dm_refusals(
    sim: FakeDiscord, http: aiohttp.ClientSession, switch: str, code: int
) -> None:
    getattr(sim, switch).add(USER_ID)
    _s, dm, _h = await send(
        http, "POST", f"{sim.api}/users/@me/channels", {"recipient_id": USER_ID}, headers=BOT
    )
    status, body, _h = await send(
        http, "POST", post_url(sim, int(dm["id"])), {"content": "x"}, headers=BOT
    )
    assert (status, body["code"]) == (403, code)


# rate limits


async def test_a_per_route_limit_answers_429_with_discords_headers(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    sim.route_limits["POST /channels/{channel_id}/messages"] = (2, 10.0)
    status, _b, headers = await send(http, "POST", post_url(sim), {"content": "1"}, headers=BOT)
    assert status == 200
    assert headers["X-RateLimit-Limit"] == "2" and headers["X-RateLimit-Remaining"] == "1"
    assert float(headers["X-RateLimit-Reset-After"]) > 0 and headers["X-RateLimit-Bucket"]
    assert float(headers["X-RateLimit-Reset"]) > sim.clock.now()
    await send(http, "POST", post_url(sim), {"content": "2"}, headers=BOT)
    status, body, headers = await send(http, "POST", post_url(sim), {"content": "3"}, headers=BOT)
    assert status == 429
    assert body["global"] is False and 0 < body["retry_after"] <= 10
    assert headers["X-RateLimit-Scope"] == "user" and headers["Retry-After"]
    assert headers["Via"] and "X-RateLimit-Global" not in headers
    other = post_url(sim, CHANNEL_ID + 1)
    status, _b, _h = await send(http, "POST", other, {"content": "x"}, headers=BOT)
    assert status == 200, "the bucket is per channel"


async def test_the_global_limit_spares_interaction_endpoints(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    sim.global_per_s = 3
    sim.clock.advance(1.0 - sim.clock.now() % 1.0 + 0.001)  # start of a fresh second
    for _ in range(3):
        await send(http, "GET", f"{sim.api}/users/@me", headers=BOT)
    status, body, headers = await send(http, "GET", f"{sim.api}/users/@me", headers=BOT)
    assert status == 429 and body["global"] is True
    assert headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global"
    payload = command(sim)
    status, _b, _h = await send(http, "POST", callback_url(sim, payload), {"type": 5})
    assert status == 200


async def test_discord_py_reads_the_429_and_retries(sim: FakeDiscord) -> None:
    """discord.py's own client waits ``retry_after`` and gets through, or gives up."""
    sim.chaos = Chaos(seed=1, rate=1.0, retry_after_s=0.01, kinds=frozenset({"me"}))
    async with discord_http(sim) as client:
        with pytest.raises(discord.HTTPException) as refused:
            await client.static_login(BOT_TOKEN)
    assert refused.value.status == 429, "five 429s in a row, as discord.py allows"
    assert len(sim.refused()) == 5
    sim.chaos = Chaos(seed=1, rate=0.5, retry_after_s=0.01, kinds=frozenset({"me"}))
    async with discord_http(sim) as client:
        data = await client.static_login(BOT_TOKEN)
    assert data["id"]


# gateway


async def test_gateway_bot_recommends_shards(sim: FakeDiscord) -> None:
    sim.recommended_shards = 3
    async with discord_http(sim) as client:
        await client.static_login(BOT_TOKEN)
        shards, url, limit = await client.get_bot_gateway()
    assert shards == 3 and url == sim.gateway_url
    assert limit["max_concurrency"] == 1 and limit["remaining"] > 0


@pytest.mark.parametrize(
    ("token", "shard", "close"), [("wrong", [0, 1], 4004), (BOT_TOKEN, [2, 2], 4010)]
)
async def test_identify_rules(
    sim: FakeDiscord, http: aiohttp.ClientSession, token: str, shard: list[int], close: int
) -> None:
    async with http.ws_connect(sim.gateway_url) as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10
        identify = {"token": token, "intents": 1, "properties": {}, "shard": shard}
        await ws.send_json({"op": 2, "d": identify})
        message = await ws.receive()
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == close


# guilds on shard 0 and shard 1 of 2: (guild_id >> 22) % 2 is 0 and 1
GUILD_ON_0 = 1000 << 22
GUILD_ON_1 = 1001 << 22


async def identified(
    sim: FakeDiscord,
    http: aiohttp.ClientSession,
    stack: contextlib.AsyncExitStack,
    shard: list[int] | None,
) -> aiohttp.ClientWebSocketResponse:
    """A gateway session identified as ``shard`` (None: no sharding), its READY read."""
    ws = await stack.enter_async_context(http.ws_connect(sim.gateway_url))
    assert (await ws.receive_json())["op"] == 10
    identify: dict[str, Any] = {"token": BOT_TOKEN, "intents": 1, "properties": {}}
    if shard is not None:
        identify["shard"] = shard
    await ws.send_json({"op": 2, "d": identify})
    ready = await ws.receive_json()
    assert ready["t"] == "READY" and ready["d"]["shard"] == (shard or [0, 1])
    return ws


async def next_dispatch(ws: aiohttp.ClientWebSocketResponse) -> tuple[str, str]:
    """The next DISPATCH a session got: its event and guild id ("dm" for none)."""
    frame = await ws.receive_json()
    data = frame["d"]
    guild = data.get("guild_id") or (data["id"] if frame["t"] == "GUILD_CREATE" else "dm")
    return frame["t"], str(guild)


async def test_each_dispatch_goes_to_the_shard_of_its_guild_and_dms_to_shard_0(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        zero = await identified(sim, http, stack, [0, 2])
        one = await identified(sim, http, stack, [1, 2])
        unsharded = await identified(sim, http, stack, None)
        everyone = [(0, 2), (1, 2), (0, 1)]

        reached = [
            await sim.push("INTERACTION_CREATE", p.split_command(guild_id=GUILD_ON_0)),
            await sim.push("INTERACTION_CREATE", p.split_command(guild_id=GUILD_ON_1)),
            await sim.push("INTERACTION_CREATE", p.split_command(guild=False)),
            await sim.push("GUILD_CREATE", sim.guild_create(GUILD_ON_1)),
            await sim.push("GUILD_CREATE", sim.guild_create(GUILD_ON_0)),
        ]
        assert [sorted(r) for r in reached] == [
            [(0, 1), (0, 2)],
            [(0, 1), (1, 2)],
            [(0, 1), (0, 2)],
            [(0, 1), (1, 2)],
            [(0, 1), (0, 2)],
        ]
        assert sorted(session.shard for session in sim.gateways) == sorted(everyone)
        # each session's frames in order: what is missing between two never came
        interaction, g0, g1 = "INTERACTION_CREATE", str(GUILD_ON_0), str(GUILD_ON_1)
        assert [await next_dispatch(zero) for _ in range(3)] == [
            (interaction, g0),
            (interaction, "dm"),
            ("GUILD_CREATE", g0),
        ]
        assert [await next_dispatch(one) for _ in range(2)] == [
            (interaction, g1),
            ("GUILD_CREATE", g1),
        ]
        assert [await next_dispatch(unsharded) for _ in range(5)] == [
            (interaction, g0),
            (interaction, g1),
            (interaction, "dm"),
            ("GUILD_CREATE", g1),
            ("GUILD_CREATE", g0),
        ]

        await zero.close()
        async with asyncio.timeout(patience(5)):
            while len(sim.gateways) > 2:  # noqa: ASYNC110 - polls the simulator
                await asyncio.sleep(0.01)
        assert await sim.push("GUILD_CREATE", sim.guild_create(GUILD_ON_0)) == [(0, 1)]


# CDN


async def test_cdn_links_expire(sim: FakeDiscord, http: aiohttp.ClientSession) -> None:
    sim.cdn_files["song.wav"] = b"RIFF"
    url = sim.cdn_url("song.wav", ttl_s=3600)
    async with http.get(url) as response:
        assert response.status == 200
    sim.clock.advance(2 * 3600)
    async with http.get(url) as response:
        assert response.status == 404
        assert "no longer available" in await response.text()


# chaos


async def test_chaos_is_seeded_and_refuses_only_what_a_call_can_get(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    sim.global_per_s = 10_000

    async def answers(seed: int) -> list[tuple[int, int | None]]:
        sim.chaos = Chaos(seed=seed, rate=0.5, retry_after_s=0.001)
        got = []
        for i in range(40):
            status, body, _h = await send(
                http, "POST", post_url(sim, CHANNEL_ID + 10 + i), {"content": "x"}, headers=BOT
            )
            got.append((status, (body.get("code") or status) if status != 200 else None))
        return got

    first, again = await answers(7), await answers(7)
    assert first == again, "the same seed gives the same refusals"
    allowed = {refusal().code for refusal in CHAOS_REFUSALS["channel_post"]} | {429}
    codes = {code for status, code in first if status != 200}
    assert codes and codes <= allowed
    assert any(status == 200 for status, _ in first)


async def test_chaos_that_kills_a_token_keeps_it_dead(
    sim: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    payload = await deferred(sim, http)
    sim.chaos = Chaos(seed=3, rate=1.0, kinds=frozenset({"edit_original"}))
    codes = []
    for _ in range(20):
        status, body, _h = await send(http, "PATCH", webhook_url(sim, payload), {"content": "x"})
        codes.append(body.get("code"))
        if body.get("code") in (50027, 10015):
            break
    sim.chaos = None
    status, body, _h = await send(http, "PATCH", webhook_url(sim, payload), {"content": "x"})
    assert (status, body["code"]) == (401, 50027), codes

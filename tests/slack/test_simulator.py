"""The Slack simulator refuses what Slack refuses: each rule, broken once, through slack_sdk.

Calls go through slack_sdk's real ``AsyncWebClient`` (and its ``AsyncWebhookClient`` for
response URLs), so the wire format is the one the plugin speaks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import (
    BOT_SCOPES,
    CLIENT_ID,
    CLIENT_SECRET,
    LOGIN_PAGE,
    TEAM_ID,
    TEST_BOT_TOKEN,
    TOKEN_TTL_S,
    Chaos,
    FileHost,
    MockSlack,
)

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
MODAL: dict[str, Any] = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Split stems"},
    "blocks": [SECTION],
}


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack().running() as api:
        yield api


def client(api: MockSlack, token: str | None = TEST_BOT_TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=api.api_url)


async def refused(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as raised:
        await call
    return raised.value


# tokens and scopes


async def test_no_token_is_not_authed(slack: MockSlack) -> None:
    error = await refused(client(slack, token=None).auth_test())
    assert error.response["error"] == "not_authed"


async def test_an_unknown_token_is_invalid_auth(slack: MockSlack) -> None:
    error = await refused(client(slack, token="xoxb-nope").auth_test())
    assert error.response["error"] == "invalid_auth"


async def test_a_revoked_token_is_refused(slack: MockSlack) -> None:
    slack.revoke()
    error = await refused(client(slack).auth_test())
    assert error.response["error"] == "token_revoked"


async def test_a_missing_scope_names_the_needed_and_provided_scopes(slack: MockSlack) -> None:
    slack.set_scopes(BOT_SCOPES - {"files:write"})

    error = await refused(client(slack).files_getUploadURLExternal(filename="a.mp3", length=3))

    assert error.response["error"] == "missing_scope"
    assert error.response["needed"] == "files:write"
    assert "chat:write" in error.response["provided"].split(",")
    assert "files:write" not in error.response["provided"]


# Block Kit and views


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "no_such_block"}],
        [{"type": "section"}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "b"},
                        "action_id": f"a{i}",
                    }
                    for i in range(26)
                ],
            }
        ],
        [SECTION] * 51,
    ],
    ids=["unknown-type", "section-without-text", "text-too-long", "26-buttons", "51-blocks"],
)
async def test_invalid_blocks_are_refused(slack: MockSlack, blocks: list[Any]) -> None:
    error = await refused(
        client(slack).chat_postMessage(channel="C0MUSIC", text="t", blocks=blocks)
    )
    assert error.response["error"] == "invalid_blocks"
    assert slack.channel_messages("C0MUSIC") == []


async def test_a_message_needs_text_or_blocks(slack: MockSlack) -> None:
    error = await refused(client(slack).api_call("chat.postMessage", json={"channel": "C0MUSIC"}))
    assert error.response["error"] == "no_text"


async def test_text_over_40000_characters_is_too_long(slack: MockSlack) -> None:
    error = await refused(client(slack).chat_postMessage(channel="C0MUSIC", text="x" * 40_001))
    assert error.response["error"] == "msg_too_long"


async def test_a_modal_title_over_24_characters_is_refused(slack: MockSlack) -> None:
    view = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}

    error = await refused(client(slack).views_open(trigger_id=slack.trigger_id(), view=view))

    assert error.response["error"] == "invalid_arguments"
    assert "title" in error.response["response_metadata"]["messages"][0]


async def test_a_modal_with_bad_blocks_is_refused(slack: MockSlack) -> None:
    view = {**MODAL, "blocks": [{"type": "input", "label": {"type": "plain_text", "text": "x"}}]}

    error = await refused(client(slack).views_open(trigger_id=slack.trigger_id(), view=view))

    assert error.response["error"] == "invalid_arguments"


async def test_a_valid_modal_opens(slack: MockSlack) -> None:
    opened = await client(slack).views_open(trigger_id=slack.trigger_id(), view=MODAL)
    assert opened["view"]["id"].startswith("V")


# trigger_id and response_url lifetimes


async def test_a_trigger_id_expires_after_3_seconds(slack: MockSlack) -> None:
    trigger = slack.trigger_id()
    slack.clock.advance(3.1)

    error = await refused(client(slack).views_open(trigger_id=trigger, view=MODAL))

    assert error.response["error"] == "expired_trigger_id"


async def test_a_trigger_id_slack_never_issued_is_invalid_and_works_once(slack: MockSlack) -> None:
    web = client(slack)
    trigger = slack.trigger_id()
    await web.views_open(trigger_id=trigger, view=MODAL)

    again = await refused(web.views_open(trigger_id=trigger, view=MODAL))
    made_up = await refused(web.views_open(trigger_id="1.2.3", view=MODAL))

    assert again.response["error"] == "exchanged_trigger_id"
    assert made_up.response["error"] == "invalid_trigger_id"


async def test_a_response_url_takes_5_responses(slack: MockSlack) -> None:
    hook = AsyncWebhookClient(slack.response_url("five"))
    statuses = [(await hook.send(text=f"reply {n}")).status_code for n in range(6)]

    assert statuses == [200] * 5 + [404]
    assert (await hook.send(text="again")).body == "used_url"


async def test_a_response_url_expires_after_30_minutes(slack: MockSlack) -> None:
    hook = AsyncWebhookClient(slack.response_url("late"))
    slack.clock.advance(30 * 60 + 1)

    sent = await hook.send(text="too late")

    assert (sent.status_code, sent.body) == (404, "expired_url")
    assert slack.responses == []


# channels


async def test_an_unknown_channel_is_not_found(slack: MockSlack) -> None:
    error = await refused(client(slack).chat_postMessage(channel="C0NOWHERE", text="hi"))
    assert error.response["error"] == "channel_not_found"


async def test_a_private_channel_without_the_app_is_not_found(slack: MockSlack) -> None:
    slack.add_channel("G0SECRET", private=True, bot_member=False)
    error = await refused(client(slack).chat_postMessage(channel="G0SECRET", text="hi"))
    assert error.response["error"] == "channel_not_found"


async def test_an_archived_channel_refuses_messages(slack: MockSlack) -> None:
    slack.add_channel("C0OLD", archived=True)
    error = await refused(client(slack).chat_postMessage(channel="C0OLD", text="hi"))
    assert error.response["error"] == "is_archived"


async def test_chat_write_public_posts_in_public_channels_but_does_not_upload(
    slack: MockSlack,
) -> None:
    slack.add_channel("C0PUBLIC", bot_member=False)
    web = client(slack)

    posted = await web.chat_postMessage(channel="C0PUBLIC", text="status")
    upload = await web.files_getUploadURLExternal(filename="a.mp3", length=3)
    async with aiohttp.ClientSession() as session:
        await session.post(upload["upload_url"], data=b"abc")
    error = await refused(
        web.files_completeUploadExternal(files=[{"id": upload["file_id"]}], channel_id="C0PUBLIC")
    )

    assert posted["ok"]
    assert error.response["error"] == "not_in_channel"


async def test_without_chat_write_public_a_public_channel_is_not_in_channel(
    slack: MockSlack,
) -> None:
    slack.add_channel("C0PUBLIC", bot_member=False)
    slack.set_scopes(BOT_SCOPES - {"chat:write.public"})

    error = await refused(client(slack).chat_postMessage(channel="C0PUBLIC", text="status"))

    assert error.response["error"] == "not_in_channel"


async def test_post_ephemeral_needs_a_user_who_is_in_the_channel(slack: MockSlack) -> None:
    web = client(slack)

    no_user = await refused(
        web.api_call("chat.postEphemeral", json={"channel": "C0MUSIC", "text": "x"})
    )
    stranger = await refused(web.chat_postEphemeral(channel="C0MUSIC", user="U0CAROL", text="x"))

    assert no_user.response["error"] == "invalid_arguments"
    assert stranger.response["error"] == "user_not_in_channel"


async def test_chat_update_needs_the_right_channel_and_ts(slack: MockSlack) -> None:
    web = client(slack)
    posted = await web.chat_postMessage(channel="C0MUSIC", text="status")

    wrong_channel = await refused(web.chat_update(channel="C0STUDIO", ts=posted["ts"], text="x"))
    wrong_ts = await refused(web.chat_update(channel="C0MUSIC", ts="1.000001", text="x"))
    edited = await web.chat_update(channel="C0MUSIC", ts=posted["ts"], text="done")

    assert wrong_channel.response["error"] == "message_not_found"
    assert wrong_ts.response["error"] == "message_not_found"
    assert edited["ok"]
    assert slack.message("C0MUSIC", posted["ts"]).text == "done"  # type: ignore[union-attr]


# files


async def test_completing_an_upload_needs_the_bytes_and_works_once(slack: MockSlack) -> None:
    web = client(slack)
    upload = await web.files_getUploadURLExternal(filename="a.mp3", length=3)

    not_uploaded = await refused(
        web.files_completeUploadExternal(files=[{"id": upload["file_id"]}])
    )
    async with aiohttp.ClientSession() as session:
        await session.post(upload["upload_url"], data=b"abc")
    done = await web.files_completeUploadExternal(
        files=[{"id": upload["file_id"], "title": "a"}], channel_id="C0MUSIC"
    )
    twice = await refused(web.files_completeUploadExternal(files=[{"id": upload["file_id"]}]))

    assert not_uploaded.response["error"] == "file_not_found"
    assert [f["id"] for f in done["files"]] == [upload["file_id"]]
    assert twice.response["error"] == "file_not_found"


async def test_several_files_completed_together_are_one_message(
    slack: MockSlack, tmp_path: Any
) -> None:
    paths = []
    for name in ("vocals", "drums"):
        path = tmp_path / f"{name}.mp3"
        path.write_bytes(name.encode())
        paths.append(path)

    await client(slack).files_upload_v2(
        file_uploads=[{"file": str(p), "title": p.stem} for p in paths], channel="C0MUSIC"
    )

    [message] = slack.channel_messages("C0MUSIC")
    assert len(message.files) == 2


async def test_an_upload_over_1_gb_is_refused(slack: MockSlack) -> None:
    error = await refused(
        client(slack).files_getUploadURLExternal(filename="a.wav", length=2**30 + 1)
    )
    assert error.response["error"] == "invalid_arguments"


async def test_an_unknown_file_is_not_found(slack: MockSlack) -> None:
    error = await refused(client(slack).files_info(file="F0MISSING"))
    assert error.response["error"] == "file_not_found"


# rate limits


async def test_chat_update_is_tier_3_per_workspace(slack: MockSlack) -> None:
    web = AsyncWebClient(token=TEST_BOT_TOKEN, base_url=slack.api_url)
    posted = await web.chat_postMessage(channel="C0MUSIC", text="status")
    for n in range(50):
        await web.chat_update(channel="C0MUSIC", ts=posted["ts"], text=f"{n}")

    error = await refused(web.chat_update(channel="C0MUSIC", ts=posted["ts"], text="one more"))
    slack.clock.advance(60)
    later = await web.chat_update(channel="C0MUSIC", ts=posted["ts"], text="later")

    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited"
    assert int(error.response.headers["Retry-After"]) >= 1
    assert later["ok"]


async def test_post_message_is_one_per_second_per_channel(slack: MockSlack) -> None:
    web = client(slack)
    await web.chat_postMessage(channel="C0MUSIC", text="one")

    same_channel = await refused(web.chat_postMessage(channel="C0MUSIC", text="two"))
    other_channel = await web.chat_postMessage(channel="C0STUDIO", text="two")
    slack.clock.advance(1.0)
    a_second_later = await web.chat_postMessage(channel="C0MUSIC", text="two")

    assert same_channel.response.status_code == 429
    assert same_channel.response.headers["Retry-After"] == "1"
    assert other_channel["ok"] and a_second_later["ok"]


# OAuth


async def test_oauth_v2_access_gives_a_team_token_once(slack: MockSlack) -> None:
    web = AsyncWebClient(base_url=slack.api_url)
    code = slack.oauth_code("T0SECOND")

    def exchange(code: str, secret: str = CLIENT_SECRET) -> Any:
        form = {"client_id": CLIENT_ID, "client_secret": secret, "code": code}
        return web.api_call("oauth.v2.access", data=form)

    granted = await exchange(code)
    reused = await refused(exchange(code))
    bad_secret = await refused(exchange(slack.oauth_code("T0SECOND"), "x"))

    assert granted["team"]["id"] == "T0SECOND"
    who = await AsyncWebClient(token=granted["access_token"], base_url=slack.api_url).auth_test()
    assert who["team_id"] == "T0SECOND"
    assert reused.response["error"] == "invalid_code"
    assert bad_secret.response["error"] == "bad_client_secret"


CREDENTIALS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


async def oauth_v2_access(slack: MockSlack, **args: str) -> Any:
    return await AsyncWebClient(base_url=slack.api_url).api_call(
        "oauth.v2.access", data={**CREDENTIALS, **args}
    )


async def test_with_token_rotation_a_token_expires_after_12_hours(slack: MockSlack) -> None:
    slack.token_rotation = True
    granted = await oauth_v2_access(slack, code=slack.oauth_code("T0SECOND"))
    bot = client(slack, token=granted["access_token"])
    await bot.auth_test()

    slack.clock.advance(TOKEN_TTL_S)
    expired = await refused(bot.auth_test())

    assert granted["access_token"].startswith("xoxe.xoxb-")
    assert granted["refresh_token"].startswith("xoxe-") and granted["expires_in"] == 43200
    assert expired.response["error"] == "token_expired"


async def test_a_refresh_token_gives_a_new_token_once(slack: MockSlack) -> None:
    slack.token_rotation = True
    granted = await oauth_v2_access(slack, code=slack.oauth_code("T0SECOND"))
    slack.clock.advance(TOKEN_TTL_S)

    renewed = await oauth_v2_access(
        slack, grant_type="refresh_token", refresh_token=granted["refresh_token"]
    )
    reused = await refused(
        oauth_v2_access(slack, grant_type="refresh_token", refresh_token=granted["refresh_token"])
    )
    slack.revoke_refresh_tokens("T0SECOND")
    revoked = await refused(
        oauth_v2_access(slack, grant_type="refresh_token", refresh_token=renewed["refresh_token"])
    )

    who = await client(slack, token=renewed["access_token"]).auth_test()
    assert who["team_id"] == "T0SECOND" and renewed["expires_in"] == 43200
    assert renewed["refresh_token"] != granted["refresh_token"]
    assert reused.response["error"] == revoked.response["error"] == "invalid_refresh_token"


# threads


async def test_a_reply_goes_in_its_parents_thread(slack: MockSlack) -> None:
    parent = slack.user_message("C0MUSIC")

    await client(slack).chat_postMessage(channel="C0MUSIC", text="hi", thread_ts=parent.ts)

    assert [m.text for m in slack.thread("C0MUSIC", parent.ts)] == ["hi"]
    assert slack.misthreaded == []


@pytest.mark.parametrize("target", ["no message", "a reply", "another channel's message"])
async def test_a_thread_ts_that_is_no_parent_is_taken_and_lost(
    slack: MockSlack, target: str
) -> None:
    parent = slack.user_message("C0MUSIC")
    reply = slack.user_message("C0MUSIC", thread_ts=parent.ts)
    elsewhere = slack.user_message("C0STUDIO")
    thread_ts = {
        "no message": "1600000000.000001",
        "a reply": reply.ts,
        "another channel's message": elsewhere.ts,
    }[target]

    posted = await client(slack).chat_postMessage(channel="C0MUSIC", text="x", thread_ts=thread_ts)

    assert posted["ok"] is True  # Slack lists no error for it
    assert [m.ts for m in slack.misthreaded] == [posted["ts"]]
    assert slack.thread("C0MUSIC", parent.ts) == [reply]


async def test_files_completed_into_a_reply_are_lost_from_the_thread(slack: MockSlack) -> None:
    parent = slack.user_message("C0MUSIC")
    reply = slack.user_message("C0MUSIC", thread_ts=parent.ts)
    web = client(slack)
    upload = await web.files_getUploadURLExternal(filename="a.mp3", length=3)
    async with aiohttp.ClientSession() as session:
        await session.post(upload["upload_url"], data=b"abc")

    await web.files_completeUploadExternal(
        files=[{"id": upload["file_id"]}], channel_id="C0MUSIC", thread_ts=reply.ts
    )

    assert [m.files for m in slack.misthreaded] == [[upload["file_id"]]]


async def test_a_deleted_parent_keeps_its_thread(slack: MockSlack) -> None:
    web = client(slack)
    parent = await web.chat_postMessage(channel="C0MUSIC", text="status")
    await web.chat_delete(channel="C0MUSIC", ts=parent["ts"])
    slack.clock.advance(1)  # one message per second per channel

    await web.chat_postMessage(channel="C0MUSIC", text="stems", thread_ts=parent["ts"])

    assert [m.text for m in slack.thread("C0MUSIC", parent["ts"])] == ["stems"]
    assert slack.misthreaded == []


# Slack Connect


async def test_files_info_shows_a_connect_file_only_where_it_was_shared(
    slack: MockSlack,
) -> None:
    stub = slack.connect_file("F0EXT", "their demo.wav", "https://files.example/F0EXT")
    slack.add_workspace("T0SECOND")
    slack.add_token("xoxb-second", team_id="T0SECOND")

    found = await client(slack).files_info(file=stub["id"])
    hidden = await refused(client(slack, token="xoxb-second").files_info(file=stub["id"]))

    assert stub == {"id": "F0EXT", "mode": "hidden_by_limit", "file_access": "check_file_info"}
    assert found["file"]["url_private_download"] == "https://files.example/F0EXT"
    assert found["file"]["user_team"] != TEAM_ID
    assert hidden.response["error"] == "file_not_found"


async def test_the_file_host_serves_a_token_slack_takes_of_a_workspace_that_sees_the_file(
    slack: MockSlack,
) -> None:
    async with FileHost(token="unused", audio=b"RIFF", api=slack).running() as host:
        url = host.file_url("F0EXT", "their demo.wav")
        slack.connect_file("F0EXT", "their demo.wav", url)
        slack.add_workspace("T0SECOND")
        slack.add_token("xoxb-second", team_id="T0SECOND")
        slack.add_token("xoxe.xoxb-old")
        slack.tokens["xoxe.xoxb-old"].expires_at = slack.clock.now()

        async def download(token: str) -> bytes:
            async with (
                aiohttp.ClientSession() as session,
                session.get(url, headers={"Authorization": f"Bearer {token}"}) as answer,
            ):
                return await answer.read()

        assert await download(TEST_BOT_TOKEN) == b"RIFF"
        assert await download("xoxb-second") == LOGIN_PAGE  # not shared with that workspace
        assert await download("xoxe.xoxb-old") == LOGIN_PAGE  # expired


# chaos


async def test_chaos_answers_with_refusals_the_method_can_get_and_is_seeded(
    slack: MockSlack,
) -> None:
    web = client(slack)

    async def run(seed: int) -> list[str | None]:
        slack.chaos = Chaos(seed=seed, rate=0.5, methods=frozenset({"auth.test"}))
        seen: list[str | None] = []
        for _ in range(40):
            try:
                await web.auth_test()
                seen.append(None)
            except SlackApiError as error:
                data = error.response.data
                seen.append(
                    str(data["error"])
                    if isinstance(data, dict)
                    else str(error.response.status_code)
                )
        return seen

    first, again = await run(7), await run(7)

    assert first == again
    refusals = {e for e in first if e is not None}
    assert refusals and refusals <= {
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "503",
    }

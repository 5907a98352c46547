"""Setting the bot up: the entry point, command sync, the invite URL, sharding, settings."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import discord
import pytest
import typer
import yarl
from stemhub_discord import DiscordFrontend, DiscordSettings
from stemhub_discord.client import StemhubClient, StemhubShardedClient, build_client
from typer.testing import CliRunner

from stemhub import ConfigError, ErrorCode, JobStatus, StemhubError
from stemhub.cli import app as stemhub_app
from stemhub.cli import exit_code_for
from stemhub.hub import Hub
from stemhub.plugin.manager import get_plugin_manager
from stemhub.plugin.spec import ConfigCheck, FrontendFactory
from stemhub.testing import make_settings, patience
from tests.discord import _payloads as p
from tests.discord.conftest import Bot, BotFactory
from tests.fakes.discord import APP_ID, GUILD_ID, Chaos

# discord.py 2.6 (the declared floor) opens the gateway with aiohttp's float timeout, which
# newer aiohttp deprecates; 2.7 does not. Harmless at run time, an error under "error".
OLD_WS_TIMEOUT = pytest.mark.filterwarnings(
    "ignore:parameter 'timeout' of type 'float' is deprecated:DeprecationWarning"
)


EXPECTED_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 38) | (1 << 14) | (1 << 15)


def stemhub_cli(*args: str) -> typer.testing.Result:
    """The ``stemhub`` command line, whose ``discord`` group the plugin registers."""
    return CliRunner().invoke(stemhub_app, list(args))


def test_the_entry_point_registers_the_discord_frontend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.delenv("STEMHUB_DISCORD_TOKEN", raising=False)
    pm = get_plugin_manager(only=["discord"])
    assert pm.report.loaded["discord"] == "stemhub-discord"
    registered: dict[str, FrontendFactory] = {}
    checks: dict[str, ConfigCheck] = {}

    def register(name: str, factory: FrontendFactory, *, check: ConfigCheck | None = None) -> None:
        registered[name] = factory
        if check is not None:
            checks[name] = check

    pm.hook.stemhub_register_frontends(register=register)
    hub = Hub(make_settings(tmp_path / "data"), pm=pm)
    # without a token the factory and doctor's check refuse at once, naming the setting
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is missing"):
        registered["discord"](hub)
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is missing"):
        checks["discord"](hub)
    monkeypatch.setenv("DISCORD_TOKEN", "abc.def.ghi")
    assert isinstance(registered["discord"](hub), DiscordFrontend)
    assert checks["discord"](hub).startswith("bot token set")


def test_the_token_comes_from_discord_token_as_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("STEMHUB_DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("DISCORD_TOKEN", "abc.def.ghi")
    settings = DiscordSettings(_env_file=None)
    assert settings.token is not None
    assert settings.token.get_secret_value() == "abc.def.ghi"
    assert "abc.def.ghi" not in repr(settings)


@pytest.mark.parametrize("typed", ["2,3", "2, 3", "2 3", "[2, 3]"])
def test_shard_ids_from_the_environment_as_people_type_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, typed: str
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("STEMHUB_DISCORD_SHARD_IDS", typed)
    assert DiscordSettings(_env_file=None).shard_ids == [2, 3]
    monkeypatch.setenv("STEMHUB_DISCORD_SHARD_IDS", "two")
    with pytest.raises(ValueError, match="shard_ids"):
        DiscordSettings(_env_file=None)


def test_guild_policy_and_shards_come_from_stemhub_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "stemhub.toml"
    toml.write_text(
        "[discord]\nshard_ids = [2, 3]\nshard_count = 4\ndm_results = false\n"
        f'[discord.guilds."{GUILD_ID}"]\nallowed_channels = [42]\ndm_results = true\n'
    )
    monkeypatch.setenv("STEMHUB_CONFIG", str(toml))
    settings = DiscordSettings(_env_file=None)
    assert settings.policy_for(GUILD_ID).allowed_channels == [42]
    assert settings.dm_results_in(GUILD_ID) is True
    assert settings.dm_results_in(999) is False
    assert settings.shard_ids == [2, 3]


async def test_sharding_follows_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    plain = build_client(DiscordSettings(_env_file=None), None)  # type: ignore[arg-type]
    assert type(plain) is StemhubClient
    sharded = build_client(
        DiscordSettings(_env_file=None, shard_ids=[2, 3], shard_count=4),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )
    assert isinstance(sharded, discord.AutoShardedClient)
    assert type(sharded) is StemhubShardedClient
    assert sharded.shard_ids == [2, 3]
    assert sharded.shard_count == 4
    auto = build_client(DiscordSettings(_env_file=None, auto_shard=True), None)  # type: ignore[arg-type]
    assert isinstance(auto, discord.AutoShardedClient)
    assert auto.shard_count is None


def test_invite_url_has_exactly_the_needed_scopes_and_permissions() -> None:
    result = stemhub_cli("discord", "invite-url", "--client-id", str(APP_ID))
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[0]
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [str(APP_ID)]
    assert query["scope"] == ["bot applications.commands"]
    assert query["permissions"] == [str(EXPECTED_PERMISSIONS)]


def test_invite_url_reads_the_application_id_from_the_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("STEMHUB_DISCORD_APPLICATION_ID", raising=False)
    first = base64.b64encode(str(APP_ID).encode()).decode().rstrip("=")
    monkeypatch.setenv("DISCORD_TOKEN", f"{first}.GaBcDe.secretpart")
    result = stemhub_cli("discord", "invite-url")
    assert result.exit_code == 0, result.output
    assert f"client_id={APP_ID}" in result.stdout
    assert "secretpart" not in result.output


def test_invite_url_without_any_id_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    for name in ("DISCORD_TOKEN", "STEMHUB_DISCORD_TOKEN", "STEMHUB_DISCORD_APPLICATION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = stemhub_cli("discord", "invite-url")
    assert result.exit_code == 3
    assert "STEMHUB_DISCORD_APPLICATION_ID" in result.output


async def test_commands_sync_to_the_dev_guild(make_bot: BotFactory) -> None:
    async with make_bot(env={"dev_guild_id": str(GUILD_ID)}) as bot:
        await bot.frontend.sync_commands()
    (call,) = bot.fake.find("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    commands = {command["name"]: command for command in call.json}
    split = commands["split"]
    options = {option["name"]: option for option in split["options"]}
    assert options["file"]["type"] == 11
    assert options["url"]["type"] == 3
    assert options["dm"]["type"] == 5
    stems = [choice["value"] for choice in options["stems"]["choices"]]
    assert stems[:3] == ["BOTH", "FOUR_STEMS", "SIX_STEMS"]
    assert "drums" in stems
    assert [c["value"] for c in options["format"]["choices"]] == ["WAV", "MP3", "FLAC"]
    assert commands["Split stems"]["type"] == 3
    admin = commands["stemhub"]
    assert int(admin["default_member_permissions"]) == 1 << 5
    assert [o["name"] for o in admin["options"]] == ["queue"]
    assert not bot.fake.find("PUT", f"/applications/{APP_ID}/commands")


async def test_commands_sync_globally_without_a_dev_guild(bot: Bot) -> None:
    await bot.frontend.sync_commands()
    assert bot.fake.find("PUT", f"/applications/{APP_ID}/commands")


@OLD_WS_TIMEOUT
async def test_run_logs_in_syncs_and_takes_commands_from_the_gateway(
    make_bot: BotFactory, song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``stemhub run --plugins discord`` does with the frontend, end to end."""
    async with make_bot() as bot:
        monkeypatch.setattr(
            discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(bot.fake.gateway_url)
        )
        running = asyncio.create_task(bot.frontend.run())
        try:
            async with asyncio.timeout(patience(10)):
                while not bot.fake.gateways:  # noqa: ASYNC110 - polls the fake
                    await asyncio.sleep(0.01)
            (identify,) = bot.fake.identified
            assert identify["token"] == "fake-bot-token"
            assert identify["intents"] == discord.Intents(guilds=True).value
            assert bot.fake.find("PUT", f"/applications/{APP_ID}/commands")
            attachment = p.attachment("song.wav", song.stat().st_size, bot.fake.cdn_url("song.wav"))
            payload = p.split_command(file=attachment)
            await bot.fake.push("INTERACTION_CREATE", payload)
            job = await bot.hub.wait_for((await bot.job_for(payload)).id, timeout=patience(10))
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert job.status is JobStatus.COMPLETED
    assert job.delivery["sent"]["result"]["via"] == "interaction"


def contexts_of(call_json: list[dict[str, object]]) -> dict[object, tuple[object, object]]:
    return {c["name"]: (c.get("contexts"), c.get("integration_types")) for c in call_json}


async def test_commands_say_where_they_may_be_used(make_bot: BotFactory, tmp_path: Path) -> None:
    async with make_bot(data_dir=tmp_path / "a") as bot:
        await bot.frontend.sync_commands()
    (call,) = bot.fake.find("PUT", f"/applications/{APP_ID}/commands")
    assert contexts_of(call.json) == {
        "split": ([0], [0]),
        "Split stems": ([0], [0]),
        "stemhub": ([0], [0]),
    }, "servers only: a server's channel and role rules cannot be skipped in DMs"
    async with make_bot(data_dir=tmp_path / "b", env={"dm_commands": "true"}) as bot:
        await bot.frontend.sync_commands()
    call = bot.fake.find("PUT", f"/applications/{APP_ID}/commands")[-1]
    assert contexts_of(call.json)["split"] == ([0, 1], [0])
    assert contexts_of(call.json)["stemhub"] == ([0], [0])


async def test_commands_are_synced_only_when_they_changed(
    make_bot: BotFactory, tmp_path: Path
) -> None:
    data = tmp_path / "shared"
    async with make_bot(data_dir=data) as first:
        assert await first.frontend.sync_commands() is True
    async with make_bot(data_dir=data) as again:
        assert await again.frontend.sync_commands() is False, "same tree: no sync"
    async with make_bot(data_dir=data, env={"dm_commands": "true"}) as changed:
        assert await changed.frontend.sync_commands() is True
    assert len(first.fake.find("PUT", f"/applications/{APP_ID}/commands")) == 2


async def test_a_refused_sync_is_one_clean_error(make_bot: BotFactory) -> None:
    async with make_bot() as bot:
        bot.fake.chaos = Chaos(seed=5, rate=1.0, retry_after_s=0.001, kinds=frozenset({"sync"}))
        with pytest.raises(StemhubError) as refused:
            await bot.frontend.sync_commands()
    assert refused.value.code is ErrorCode.CONFIG_MISSING
    assert "applications.commands" in str(refused.value.operator_message)
    assert exit_code_for(refused.value.code) == 3


async def test_a_missing_token_names_discord_token(
    make_bot: BotFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)
    for name in ("DISCORD_TOKEN", "STEMHUB_DISCORD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    frontend = DiscordFrontend(Hub(make_settings(tmp_path / "data")))  # type: ignore[arg-type]
    with pytest.raises(StemhubError) as missing:
        await frontend.login()
    assert missing.value.code is ErrorCode.CONFIG_MISSING
    assert "DISCORD_TOKEN" in missing.value.message
    assert exit_code_for(missing.value.code) == 3


async def test_no_network_at_startup_is_not_bad_usage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("STEMHUB_DISCORD_TOKEN", "fake-bot-token")
    monkeypatch.setenv("STEMHUB_DISCORD_API_BASE_URL", "http://127.0.0.1:9/api/v10")
    frontend = DiscordFrontend(Hub(make_settings(tmp_path / "data")))  # type: ignore[arg-type]
    try:
        with pytest.raises(StemhubError) as unreachable:
            await frontend.login()
    finally:
        await frontend.close()
    assert unreachable.value.retryable
    assert exit_code_for(unreachable.value.code) not in (0, 2, 3)


@OLD_WS_TIMEOUT
async def test_a_shard_count_alone_identifies_every_shard(
    make_bot: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_bot(env={"shard_count": "2"}) as bot:
        assert isinstance(bot.frontend.client, StemhubShardedClient)
        monkeypatch.setattr(
            discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(bot.fake.gateway_url)
        )
        running = asyncio.create_task(bot.frontend.run())
        try:
            async with asyncio.timeout(patience(10)):
                while len(bot.fake.identified) < 2:  # noqa: ASYNC110 - polls the simulator
                    await asyncio.sleep(0.01)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert sorted(tuple(i["shard"]) for i in bot.fake.identified) == [(0, 2), (1, 2)]

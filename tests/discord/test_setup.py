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
from stemhub_discord.plugin import stemhub_register_commands
from typer.testing import CliRunner

from stemhub import JobStatus
from stemhub.hookspecs import FrontendFactory
from stemhub.hub import Hub
from stemhub.plugins import get_plugin_manager
from stemhub.testing import make_settings
from tests.discord import _payloads as p
from tests.discord._fake_discord import APP_ID, GUILD_ID
from tests.discord.conftest import Bot, BotFactory

EXPECTED_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 38) | (1 << 14) | (1 << 15)


def stemhub_cli(*args: str) -> typer.testing.Result:
    """The ``stemhub`` command line with the plugin's commands added, as ``main()`` does."""
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """stemhub"""

    stemhub_register_commands(cli=root)
    return CliRunner().invoke(root, list(args))


def test_the_entry_point_registers_the_discord_frontend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "absent.toml"))
    pm = get_plugin_manager(only=["discord"])
    assert pm.report.loaded["discord"] == "stemhub-discord"
    registered: dict[str, FrontendFactory] = {}
    pm.hook.stemhub_register_frontends(register=registered.__setitem__)
    frontend = registered["discord"](Hub(make_settings(tmp_path / "data"), pm=pm))
    assert isinstance(frontend, DiscordFrontend)


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
            async with asyncio.timeout(10):
                while not bot.fake.gateways:  # noqa: ASYNC110 - polls the fake
                    await asyncio.sleep(0.01)
            (identify,) = bot.fake.identified
            assert identify["token"] == "fake-bot-token"
            assert identify["intents"] == discord.Intents(guilds=True).value
            assert bot.fake.find("PUT", f"/applications/{APP_ID}/commands")
            attachment = p.attachment("song.wav", song.stat().st_size, bot.fake.cdn_url("song.wav"))
            payload = p.split_command(file=attachment)
            await bot.fake.push("INTERACTION_CREATE", payload)
            job = await bot.hub.wait_for((await bot.job_for(payload)).id, timeout=10)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert job.status is JobStatus.COMPLETED
    assert job.delivery["sent"]["result"]["via"] == "interaction"

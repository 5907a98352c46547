"""Starting Slack: wrong or missing tokens say which setting, Slack out of reach is retried."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest
from stemhub_slack.frontend import SlackFrontend
from stemhub_slack.settings import SlackSettings

from stemhub.errors import ConfigError
from tests.fakes.slack import TEST_APP_TOKEN, TEST_BOT_TOKEN
from tests.slack.conftest import SlackWorld, free_port


def _settings(world: SlackWorld, **values: object) -> SlackSettings:
    base: dict[str, object] = {
        "bot_token": TEST_BOT_TOKEN,
        "api_url": world.api.api_url,
        "mode": "socket",
        "app_token": TEST_APP_TOKEN,
    }
    return SlackSettings(_env_file=None, **{**base, **values})  # type: ignore[arg-type]


async def _run_until_refused(world: SlackWorld, settings: SlackSettings) -> ConfigError:
    hub = await world.open_hub(serve=False)
    frontend = SlackFrontend(hub, settings)
    try:
        with pytest.raises(ConfigError) as raised:
            await frontend.run()
    finally:
        await frontend.close()
    return raised.value


async def test_a_refused_bot_token_names_the_bot_token_setting(slack_world: SlackWorld) -> None:
    error = await _run_until_refused(slack_world, _settings(slack_world, bot_token="xoxb-wrong"))
    assert error.setting == "STEMHUB_SLACK_BOT_TOKEN"
    assert "invalid_auth" in error.message


async def test_a_refused_app_token_names_the_app_token_setting(slack_world: SlackWorld) -> None:
    error = await _run_until_refused(slack_world, _settings(slack_world, app_token="xapp-wrong"))
    assert error.setting == "STEMHUB_SLACK_APP_TOKEN"
    assert slack_world.api.calls_to("apps.connections.open")[-1].error == "invalid_auth"


async def test_without_app_token_or_signing_secret_the_app_token_is_named(
    slack_world: SlackWorld,
) -> None:
    hub = await slack_world.open_hub(serve=False)
    settings = _settings(slack_world, mode="auto", app_token=None, signing_secret=None)

    with pytest.raises(ConfigError) as raised:
        SlackFrontend(hub, settings)

    assert raised.value.setting == "STEMHUB_SLACK_APP_TOKEN"
    assert "SIGNING_SECRET" in raised.value.message


async def test_slack_out_of_reach_is_retried_with_one_line(
    slack_world: SlackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await slack_world.open_hub(serve=False)
    nowhere = f"http://127.0.0.1:{free_port()}/api/"
    frontend = SlackFrontend(hub, _settings(slack_world, api_url=nowhere))
    caplog.set_level(logging.WARNING, logger="stemhub_slack")

    running = asyncio.create_task(frontend.run())
    while not any("cannot reach Slack" in r.getMessage() for r in caplog.records):
        assert not running.done(), running.exception()
        await asyncio.sleep(0.02)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await frontend.close()

    [record] = [r for r in caplog.records if "cannot reach Slack" in r.getMessage()][:1]
    assert record.exc_info is None


@pytest.mark.slow
async def test_stemhub_run_with_a_refused_token_exits_3(
    slack_world: SlackWorld, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "STEMHUB_DATA_DIR": str(tmp_path / "cli-data"),
        "STEMHUB_CONFIG": str(tmp_path / "absent.toml"),
        "STEMHUB_SLACK_BOT_TOKEN": "xoxb-wrong",
        "STEMHUB_SLACK_APP_TOKEN": TEST_APP_TOKEN,
        "STEMHUB_SLACK_API_URL": slack_world.api.api_url,
        "STEMHUB_DEFAULT_BACKEND": "fake",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from stemhub.cli import main; main()",
        "run",
        "--plugins",
        "slack",
        "--no-http",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 3, err.decode()
    assert "STEMHUB_SLACK_BOT_TOKEN" in err.decode()
    assert "Traceback" not in err.decode()

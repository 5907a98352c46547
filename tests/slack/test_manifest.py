"""`stemhub slack manifest`: exactly what the app uses, for Socket Mode or HTTP mode."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest
import typer
from stemhub_slack.cli import app as slack_cli
from stemhub_slack.settings import SlackSettings
from typer.testing import CliRunner


def _stemhub_cli() -> typer.Typer:
    """The plugin's command group under a ``stemhub``-like parent, as the CLI mounts it."""
    cli = typer.Typer()
    cli.add_typer(slack_cli, name="slack")
    return cli


def _manifest(monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> dict[str, object]:
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(_stemhub_cli(), ["slack", "manifest", *args])
    assert result.exit_code == 0, result.output
    start = result.stdout.index("{")
    loaded: dict[str, object] = json.loads(result.stdout[start : result.stdout.rindex("}") + 1])
    return loaded


def test_socket_mode_manifest_has_no_request_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest(monkeypatch, SLACK_APP_TOKEN="xapp-1-A-1-abc")
    settings = manifest["settings"]
    features = manifest["features"]
    assert isinstance(settings, dict) and isinstance(features, dict)

    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]
    assert settings["event_subscriptions"]["bot_events"] == ["file_shared", "message.im"]
    assert settings["interactivity"] == {"is_enabled": True}
    assert features["slash_commands"][0]["command"] == "/split"
    assert "url" not in features["slash_commands"][0]
    assert features["shortcuts"][0] == {
        "name": "Split stems",
        "type": "message",
        "callback_id": "stemhub_split_stems",
        "description": "Split the audio file of this message into stems",
    }
    assert manifest["oauth_config"] == {
        "scopes": {
            "bot": [
                "chat:write",
                "chat:write.public",
                "commands",
                "files:read",
                "files:write",
                "im:history",
                "im:write",
            ]
        }
    }


def test_http_mode_manifest_points_every_url_at_one_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = _manifest(
        monkeypatch,
        "--mode",
        "http",
        "--public-url",
        "https://stems.example.org/",
        STEMHUB_SLACK_UPLOAD_STEMS="false",
        STEMHUB_SLACK_ALLOWED_USER_GROUPS='["producers"]',
    )
    settings = manifest["settings"]
    features = manifest["features"]
    scopes = manifest["oauth_config"]["scopes"]["bot"]  # type: ignore[index]
    assert isinstance(settings, dict) and isinstance(features, dict)

    url = "https://stems.example.org/slack/events"
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == url
    assert settings["interactivity"]["request_url"] == url
    assert features["slash_commands"][0]["url"] == url
    assert "files:write" not in scopes  # links instead of uploads
    assert "usergroups:read" in scopes


def test_token_rotation_is_turned_on_for_the_oauth_install_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = _manifest(monkeypatch, "--mode", "http", "--public-url", "https://stems.example.org")
    http = _manifest(
        monkeypatch,
        "--mode",
        "http",
        "--public-url",
        "https://stems.example.org",
        STEMHUB_SLACK_TOKEN_ROTATION="true",
    )
    socket = _manifest(monkeypatch, "--mode", "socket")

    assert http["settings"]["token_rotation_enabled"] is True  # type: ignore[index]
    assert socket["settings"]["token_rotation_enabled"] is False  # type: ignore[index]
    assert default["settings"]["token_rotation_enabled"] is False  # type: ignore[index]


def test_http_mode_manifest_without_a_public_url_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "STEMHUB_PUBLIC_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEMHUB_CONFIG", "/nonexistent/stemhub.toml")

    result = CliRunner().invoke(_stemhub_cli(), ["slack", "manifest", "--mode", "http"])

    assert result.exit_code == 3
    assert "--public-url" in result.stderr
    assert "example.com" not in result.stdout


def test_the_plugin_is_registered_under_the_stemhub_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="stemhub")}
    assert names["slack"] == "stemhub_slack.plugin"


def test_slack_variable_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)

    settings = SlackSettings(_env_file=None)

    assert settings.bot_token is not None
    assert settings.bot_token.get_secret_value() == "xoxb-from-env"
    assert "xoxb-from-env" not in repr(settings)
    assert settings.resolved_mode() == "http"

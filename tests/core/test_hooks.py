"""Registration and lifecycle hooks, exercised through a hub and its HTTP app and CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import typer
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from typer.testing import CliRunner

from stemhub import hookimpl
from stemhub.frontend import Frontend
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, Origin, Source, SourceKind
from stemhub.plugin.manager import get_plugin_manager, plugin_commands
from stemhub.plugin.spec import RegisterCommand
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub, patience


class Echo(Frontend):
    name = "echo"
    delivered: list[str] = []

    async def deliver(self, job: Job) -> None:
        Echo.delivered.append(job.id)


class EverythingPlugin:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def stemhub_register_frontends(self, register: Any) -> None:
        register("echo", Echo)

    @hookimpl
    def stemhub_register_routes(self, register: Any, hub: Hub) -> None:
        async def hello(_request: Request) -> PlainTextResponse:
            return PlainTextResponse(f"jobs running: {hub.running_jobs}")

        register(Route("/hello", hello))

    @hookimpl
    async def stemhub_startup(self, hub: Hub) -> None:
        self.calls.append("startup")

    @hookimpl
    def stemhub_shutdown(self, hub: Hub) -> None:
        self.calls.append("shutdown")

    @hookimpl
    def stemhub_check_quota(self, request: JobRequest) -> None:
        self.calls.append(f"quota:{request.origin.user_id}")

    @hookimpl
    def stemhub_register_commands(self, register: RegisterCommand) -> None:
        hello = typer.Typer()

        @hello.callback()
        def _hello() -> None:
            """Say hello."""

        @hello.command("world")
        def world() -> None:
            typer.echo("hello from a plugin")

        register("hello", hello, help="Say hello.")
        register("split", hello, help="Taken by the core.")


async def test_plugin_frontend_route_and_lifecycle(
    tmp_path: Path, stemhub_audio_file: Path
) -> None:
    plugin = EverythingPlugin()
    hub = open_test_hub(
        make_settings(tmp_path / "data", default_backend="fake"),
        FakeBackendControls(),
        frontends=["echo"],
    )
    hub.pm.register(plugin, name="everything")
    async with hub:
        assert plugin.calls == ["startup"]
        job = await hub.submit(
            JobRequest(
                source=Source(kind=SourceKind.FILE, path=str(stemhub_audio_file)),
                origin=Origin(platform="echo", user_id="u7"),
            )
        )
        await hub.wait_for(job.id, timeout=patience(10))
        assert Echo.delivered[-1] == job.id
        async with HubServer(hub, port=0).running() as server, httpx.AsyncClient() as client:
            response = await client.get(server.url + "/hello")
        assert response.text == "jobs running: 0"
    assert plugin.calls == ["startup", "quota:u7", "shutdown"]


def test_plugin_adds_cli_commands() -> None:
    pm = get_plugin_manager(only=(), extra=[("everything", EverythingPlugin())])
    commands = plugin_commands(pm, taken={"split"})
    hello = commands["hello"]
    assert (hello.help, hello.plugin) == ("Say hello.", "everything")
    assert "split" not in commands  # the core's name stays the core's
    result = CliRunner().invoke(hello.app(), ["world"])
    assert result.output.strip() == "hello from a plugin"

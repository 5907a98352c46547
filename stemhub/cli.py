"""The ``stemhub`` command: split files from a shell, run the frontends, manage jobs.

Exit codes (the README documents the same): 0 success, 1 a job failed, 2 bad usage or
input (also bad input found inside a job: UNSUPPORTED_FORMAT, CORRUPT_AUDIO,
FILE_TOO_LARGE, AUDIO_TOO_LONG, ...), 3 configuration missing (a key, a setting, a
backend or plugin that is not installed), 130 interrupted. With several inputs that fail
for different reasons, the first failing input's code wins.

Every error is one line on stderr: ``error CODE: message``. Start-up matters (``--help``
and ``jobs list`` run often), so the store, the hub, the HTTP server and rich load only
inside the commands that use them. Plugins are loaded only for ``--help`` and for
commands the core does not have, and a plugin's command group (``stemhub discord ...``)
is listed by the name and help it registered: its module is imported only when it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from stemhub import __version__
from stemhub.errors import ConfigError, ErrorCode, StemhubError
from stemhub.models import ALL_STEMS, JobStatus, OutputFormat, Quality, Stage, StemSet

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from stemhub._store import Store
    from stemhub.config import Settings
    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest, Source
    from stemhub.plugin.manager import PluginCommand, PluginReport

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

INPUT_CODES = frozenset(
    {
        ErrorCode.INVALID_REQUEST,
        ErrorCode.FILE_TOO_LARGE,
        ErrorCode.UNSUPPORTED_FORMAT,
        ErrorCode.CORRUPT_AUDIO,
        ErrorCode.AUDIO_TOO_LONG,
        ErrorCode.AUDIO_TOO_SHORT,
        ErrorCode.UNSUPPORTED_STEM_SET,
        ErrorCode.UNSUPPORTED_SOURCE,
        ErrorCode.SOURCE_UNREACHABLE,
        ErrorCode.SOURCE_FORBIDDEN,
        ErrorCode.NOT_FOUND,
        ErrorCode.CONFLICT,
    }
)
"""Codes that mean "what you typed or gave cannot work": exit 2, wherever found."""
CONFIG_CODES = frozenset({ErrorCode.CONFIG_MISSING, ErrorCode.BACKEND_AUTH})
FIRST_PARTY_PLUGINS = {
    "discord": "stemhub-discord",
    "slack": "stemhub-slack",
    "n8n_bridge": "stemhub-n8n-bridge",
}
FIRST_PARTY_COMMANDS = {"discord": "discord", "slack": "slack", "keys": "n8n_bridge"}
"""The command groups of the first-party plugins, and the plugin each comes with."""
SHORT_ID = 12
"""``jobs list`` shows this many characters of an id; ``jobs show`` takes any unique prefix."""


def exit_code_for(code: str | ErrorCode | None) -> int:
    """The exit code for an error code, the same before a job starts and inside it."""
    try:
        known = ErrorCode(code) if code else ErrorCode.INTERNAL
    except ValueError:
        return EXIT_FAILED
    if known in CONFIG_CODES:
        return EXIT_CONFIG
    if known in INPUT_CODES:
        return EXIT_USAGE
    return EXIT_FAILED


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    # soft_wrap: a long message stays one line, however narrow the terminal
    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def print_error(code: str | ErrorCode, message: str, *, item: str | None = None) -> None:
    """The one error style: ``error CODE: [item: ]message`` on one line of stderr."""
    text = " ".join(message.split())
    where = f"{item}: " if item else ""
    typer.echo(f"error {code}: {where}{text}", err=True)


def _fail(error: StemhubError, *, item: str | None = None) -> typer.Exit:
    message = error.message
    if error.operator_message:
        message = f"{message} {error.operator_message}"
    print_error(error.code, message, item=item)
    return typer.Exit(EXIT_CONFIG if isinstance(error, ConfigError) else exit_code_for(error.code))


def _run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; a StemhubError ends the command with its one line and exit code."""
    try:
        return asyncio.run(make())
    except StemhubError as error:
        raise _fail(error) from None


def _settings() -> Settings:
    from pydantic import ValidationError

    from stemhub.config import Settings

    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "STEMHUB_" + "__".join(str(part) for part in first["loc"]).upper()
        raise _fail(ConfigError(name, f"not valid ({first['msg']})")) from None


def _usage_error(exc: typer.TyperException) -> int:
    """typer's usage error as one ``error`` line (a command without its subcommand: help)."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    if type(exc).__name__ == "NoArgsIsHelpError":
        if message.strip():  # with rich installed, typer printed the help already
            typer.echo(message)
        return EXIT_OK
    print_error(ErrorCode.INVALID_REQUEST, message.replace("Value error, ", ""))
    return int(getattr(exc, "exit_code", EXIT_USAGE))


class PluginCommandStub(TyperGroup):
    """A plugin's command group as ``--help`` lists it: its name and help, nothing imported."""

    def __init__(self, command: PluginCommand) -> None:
        super().__init__(name=command.name, help=command.help)
        self.plugin_command = command


class StemhubGroup(TyperGroup):
    """The ``stemhub`` command: the core's commands, then the plugins' command groups.

    Usage errors in the one error style (not typer's boxed panel); Ctrl-C is exit 130.
    Plugins are asked for their commands only when a listing or an unknown name needs
    them, and a plugin's group is imported only when it runs (:class:`PluginCommandStub`
    stands in for it until then).
    """

    _plugin_report: PluginReport | None = None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # typer's usage errors: bad values, unknown names
            result = _usage_error(exc)
        except StemhubError as error:  # a plugin command that is missing or does not load
            result = _fail(error).exit_code
        except (typer.Abort, KeyboardInterrupt):
            result = EXIT_INTERRUPTED
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else EXIT_OK)

    def _add_plugin_commands(self) -> PluginReport:
        """Stand-ins for every plugin's command groups (once): a name and a line of help."""
        if self._plugin_report is None:
            from stemhub.plugin.manager import get_plugin_manager, plugin_commands

            # a plugin that does not load is `stemhub plugins`' and `doctor`'s to report;
            # its warning must not run into the output of an unrelated command
            logging.getLogger("stemhub").addHandler(logging.NullHandler())
            pm = get_plugin_manager()
            for name, command in plugin_commands(pm, taken=self.commands).items():
                self.add_command(PluginCommandStub(command), name)
            self._plugin_report = pm.report
        return self._plugin_report

    def list_commands(self, ctx: Any) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            report = self._add_plugin_commands()
            if cmd_name not in self.commands and cmd_name in FIRST_PARTY_COMMANDS:
                # a first-party plugin's command: say why it is missing, not "no such command"
                _check_plugins(FIRST_PARTY_COMMANDS[cmd_name], report)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        stub = self.get_command(ctx, args[0]) if args else None
        if isinstance(stub, PluginCommandStub):
            self.add_command(_load_plugin_group(stub.plugin_command), args[0])
        return super().resolve_command(ctx, args)


def _load_plugin_group(command: PluginCommand) -> TyperGroup:
    """Import a plugin's command group, the way ``typer.Typer.add_typer`` would add it."""
    try:
        group = typer.main.get_group(command.app())
    except Exception as exc:  # noqa: BLE001 - a broken plugin is one error line, not a traceback
        raise StemhubError(
            ErrorCode.CONFIG_MISSING,
            f"The {command.plugin} plugin's `{command.name}` command failed to load: "
            f"{type(exc).__name__}: {exc}",
        ) from None
    group.name = command.name
    return group


app = typer.Typer(
    cls=StemhubGroup,
    name="stemhub",
    help="Split songs into stems here, in Discord, in Slack and in n8n workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
jobs_app = typer.Typer(help="List, show, retry and cancel jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stemhub {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main_options(
    context: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the hub does.")
    ] = False,
) -> None:
    """Split songs into stems here, in Discord, in Slack and in n8n workflows."""
    serving = context.invoked_subcommand in ("run", "serve")
    if verbose or serving:
        # a server's log is its output; a one-shot command's is noise unless asked for
        level = logging.INFO if verbose else logging.WARNING
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        return
    root = logging.getLogger()
    if not any(isinstance(handler, logging.NullHandler) for handler in root.handlers):
        # the command reports what went wrong itself, on one line: without a handler,
        # Python would print the hub's and the plugins' warnings before that line
        root.addHandler(logging.NullHandler())


# split


def parse_stems(text: str) -> StemSet | list[str]:
    """``FOUR_STEMS`` (any case) or names (``vocals,drums``); a clear message otherwise."""
    key = text.strip().upper()
    if key in StemSet.__members__:
        return StemSet(key)
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_STEMS]
    if not names or unknown:
        sets = ", ".join(StemSet.__members__)
        shown = ", ".join(unknown) or repr(text)
        raise StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"--stems {shown} is not a stem set or a stem name: use {sets}, "
            f"or names from {', '.join(sorted(ALL_STEMS))} (comma separated).",
        )
    return names


def _source_for(item: str) -> Source:
    from stemhub.models import Source, SourceKind

    if item.startswith(("http://", "https://")):
        host = item.split("/", 3)[2].lower()
        youtube = host.endswith(("youtube.com", "youtu.be"))
        return Source(kind=SourceKind.YOUTUBE if youtube else SourceKind.URL, url=item)
    path = Path(item).expanduser()
    if path.is_dir():
        raise StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"{item} is a folder; give the audio files in it (for example {item}/*.mp3).",
        )
    if not path.is_file():
        raise StemhubError(ErrorCode.NOT_FOUND, f"There is no file at {item}.")
    if not os.access(path, os.R_OK):
        raise StemhubError(ErrorCode.INVALID_REQUEST, f"{item} cannot be read (permission denied).")
    return Source(
        kind=SourceKind.FILE,
        path=str(path.resolve()),
        filename=path.name,
        size_bytes=path.stat().st_size,
    )


def _stem_hint(hub: Hub, backend: str, request: JobRequest) -> StemhubError | None:
    """A refusal naming the stems a backend lacks (not just the stem set), or None."""
    caps = hub.capabilities(backend)
    if request.stem_set in caps.stem_sets:
        return None
    offered = sorted({stem for stem_set in caps.stem_sets for stem in stem_set.stems})
    missing = [stem for stem in request.stem_names if stem not in offered]
    what = ", ".join(missing) if missing and isinstance(request.stems, list) else None
    asked = f"the {what} stem" if what else request.stem_set.value
    where = ""
    if request.stem_set is StemSet.SIX_STEMS:
        where = (
            " Guitar and piano need the hosted StemSplit API (set STEMSPLIT_API_KEY) or the"
            " demucs backend with STEMHUB_DEMUCS_MODEL=htdemucs_6s."
        )
    return StemhubError(
        ErrorCode.UNSUPPORTED_STEM_SET,
        f"The {backend} backend cannot make {asked}; it makes {', '.join(offered)}.{where}",
    )


def _limit_hint(hub: Hub, backend: str, code: str | None) -> str:
    """Which setting raises the limit an input hit, when it is the hub's own."""
    if code not in (ErrorCode.FILE_TOO_LARGE, ErrorCode.AUDIO_TOO_LONG):
        return ""
    max_bytes, max_seconds = hub.input_limits(backend)
    if code == ErrorCode.FILE_TOO_LARGE:
        if max_bytes == hub.settings.max_upload_bytes:
            return " Raise STEMHUB_MAX_UPLOAD_BYTES to allow larger files."
    elif max_seconds == hub.settings.max_duration_s:
        return " Raise STEMHUB_MAX_DURATION_S to allow longer audio."
    return f" That is the {backend} backend's own limit."


def _check_size(hub: Hub, backend: str, source: Source) -> None:
    from stemhub.fetch import format_bytes

    max_bytes, _ = hub.input_limits(backend)
    size = source.size_bytes
    if size is not None and size > max_bytes:
        raise StemhubError(
            ErrorCode.FILE_TOO_LARGE,
            f"The file is {format_bytes(size)}; the limit is {format_bytes(max_bytes)}."
            + _limit_hint(hub, backend, ErrorCode.FILE_TOO_LARGE),
        )


def _shown_path(path: Path) -> str:
    """Relative to the current folder when below it: short enough for the table."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _summary(hub: Hub, job: Job, backend_note: str) -> Table:
    from rich.markup import escape
    from rich.table import Table

    from stemhub.fetch import format_bytes

    audio = job.audio
    title = f"{escape(job.request.source.display_name)}  [dim]({escape(backend_note)})[/dim]"
    table = Table(title=title, title_justify="left")
    for column in ("stem", "file", "size", "duration"):
        table.add_column(column, justify="right" if column in ("size", "duration") else "left")
    for stem, output in job.outputs.items():
        path = hub.output_path(job, output)
        where = _shown_path(path) if path is not None else (output.url or "-")
        size = path.stat().st_size if path is not None and path.is_file() else output.size_bytes
        duration = f"{output.duration_s:.1f} s" if output.duration_s else "-"
        table.add_row(stem, escape(where), format_bytes(size) if size else "-", duration)
    if audio is not None:
        bpm = f"{audio.bpm:.1f}" if audio.bpm else "-"
        table.caption = f"BPM {bpm}   key {audio.key or '-'}"
    return table


async def _follow(hub: Hub, jobs: list[tuple[str, Job]]) -> list[Job]:
    """Wait for every job, with progress bars on a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = _console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:

        async def follow(item: str, job: Job) -> Job:
            bar = progress.add_task(Path(item).name[:40], total=100, stage="queued")
            final = job
            # the hub wakes the watch on every change; the poll is only a fallback
            async for snapshot in hub.watch(job.id, poll_s=2.0):
                stage = snapshot.stage.value if not snapshot.finished else "done"
                progress.update(bar, completed=snapshot.progress, stage=stage)
                final = snapshot
                if snapshot.stage is Stage.DONE:  # ended, and the end recorded
                    break
            progress.update(bar, completed=100)
            return final

        return list(await asyncio.gather(*(follow(item, job) for item, job in jobs)))


async def _split(
    inputs: list[tuple[str, Source, Path]],
    stems: StemSet | list[str],
    fmt: OutputFormat,
    quality: Quality,
    backend: str | None,
    settings: Settings,
) -> int:
    from stemhub.hub import Hub
    from stemhub.models import JobRequest, Origin
    from stemhub.outputs import CHOSEN_DIR_KEY

    async with Hub(settings, recover=False) as hub:
        planned: list[tuple[str, JobRequest, str]] = []
        first_failure: int | None = None
        # everything that can be checked is checked before the first job starts
        for item, source, folder in inputs:
            request = JobRequest(
                source=source,
                stems=stems,
                output_format=fmt,
                quality=quality,
                backend=backend,
                origin=Origin(platform="cli", context={CHOSEN_DIR_KEY: str(folder)}),
            )
            try:
                name, why = hub.choose_backend(request)
                refusal = _stem_hint(hub, name, request)
                if refusal is not None:
                    raise refusal
                _check_size(hub, name, source)
                if getattr(hub.backend(name), "available", True) is False:
                    raise StemhubError(
                        ErrorCode.CONFIG_MISSING,
                        f"The {name} backend is not ready on this machine; "
                        "`stemhub doctor` says what it needs.",
                    )
            except StemhubError as error:
                code = _fail(error, item=item).exit_code
                first_failure = first_failure if first_failure is not None else code
                continue
            planned.append((item, request, f"{name}: {why}"))
        if first_failure is not None:
            return first_failure
        submitted: list[tuple[str, Job, str]] = []
        try:
            for item, request, note in planned:
                try:
                    submitted.append((item, await hub.submit(request), note))
                except StemhubError as error:
                    code = _fail(error, item=item).exit_code
                    first_failure = first_failure if first_failure is not None else code
            finals = await _follow(hub, [(item, job) for item, job, _ in submitted])
        except asyncio.CancelledError:
            # Ctrl-C: the jobs this command started end CANCELLED, not resumed by a hub
            for _item, job, _note in submitted:
                with contextlib.suppress(StemhubError):
                    await hub.cancel(job.id)
            raise
        out = _console()
        for (item, _job, note), job in zip(submitted, finals, strict=True):
            if job.status is not JobStatus.COMPLETED:
                hint = _limit_hint(hub, job.backend or "local", job.error_code)
                message = (job.error_message or "The job did not finish.") + hint
                print_error(job.error_code or ErrorCode.INTERNAL, message, item=item)
                code = exit_code_for(job.error_code)
                first_failure = first_failure if first_failure is not None else code
                continue
            out.print(_summary(hub, job, note))
    return first_failure if first_failure is not None else EXIT_OK


@app.command()
def split(
    inputs: Annotated[
        list[str] | None, typer.Argument(help="Audio files or links.", show_default=False)
    ] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Stems go to OUT/<song name>/.")] = Path(
        "stems"
    ),
    stems: Annotated[
        str,
        typer.Option(
            "--stems",
            "-s",
            help="VOCALS, INSTRUMENTAL, BOTH, FOUR_STEMS, SIX_STEMS, or names: vocals,drums",
        ),
    ] = StemSet.FOUR_STEMS.value,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", case_sensitive=False)] = (
        OutputFormat.WAV
    ),
    quality: Annotated[Quality, typer.Option(case_sensitive=False)] = Quality.BALANCED,
    backend: Annotated[
        str | None, typer.Option(help="local, stemsplit, demucs (default: best available)")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Split a short song stemhub synthesizes itself.")
    ] = False,
) -> None:
    """Split songs into stems and write them under OUT/<song name>/."""
    import tempfile

    from stemhub.outputs import check_writable_dir, song_dirs

    items = list(inputs or [])
    with contextlib.ExitStack() as stack:
        if demo:
            from stemhub.demo import write_demo_song

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            items.append(str(write_demo_song(folder / "stemhub-demo.wav")))
            typer.echo("Synthesized a 12 s demo song (voice, drums, bass, chords).")
        if not items:
            print_error(
                ErrorCode.INVALID_REQUEST, "Give at least one audio file or link, or --demo."
            )
            raise typer.Exit(EXIT_USAGE)
        try:
            wanted = parse_stems(stems)
            sources = [(item, _source_for(item)) for item in items]
            folders = song_dirs([source.display_name for _, source in sources], out.absolute())
            for folder in [out.absolute(), *folders]:
                check_writable_dir(folder)
        except StemhubError as error:
            raise _fail(error) from None
        planned = [
            (item, source, folder) for (item, source), folder in zip(sources, folders, strict=True)
        ]
        chosen = backend.strip().lower() if backend else None
        settings = _settings()
        try:
            code = _run_async(lambda: _split(planned, wanted, fmt, quality, chosen, settings))
        except KeyboardInterrupt:
            print_error(
                ErrorCode.JOB_CANCELLED, "Interrupted; the jobs this command started are cancelled."
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)


# run and serve


def _check_plugins(wanted: str | None, report: Any) -> None:
    """``--plugins`` naming a plugin that is not there, or broken, is an error, not silence."""
    if wanted is None:
        return
    for name in sorted({n.strip() for n in wanted.split(",") if n.strip()}):
        if name in report.loaded:
            continue
        why = report.failed.get(name, "")
        if name in report.skipped:
            raise ConfigError("STEMHUB_PLUGINS", f"leaving out the {name} plugin")
        if name in report.blocked:
            raise ConfigError("STEMHUB_BLOCK_PLUGINS", f"blocking the {name} plugin you asked for")
        if why and why != "no installed plugin has this name":
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                f"The {name} plugin is installed but failed to load: {why}",
            )
        if name in FIRST_PARTY_PLUGINS:
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                f"The {name} plugin is not installed here. Install it with `pip install "
                f"{FIRST_PARTY_PLUGINS[name]}` (in a clone: `uv sync --all-packages`).",
            )
        third_party = (set(report.loaded) - set(report.builtin)) | set(report.skipped)
        installed = ", ".join(sorted(third_party)) or "none"
        raise StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"There is no plugin called {name!r} (installed plugins: {installed}).",
        )


async def _serve_frontend(hub: Hub, name: str, required: bool) -> None:
    """Run one frontend; one that is merely installed but unconfigured is skipped."""
    frontend = hub.frontend(name)
    assert frontend is not None
    try:
        await frontend.run()
    except ConfigError as error:
        if required:
            raise
        typer.echo(f"{name} stopped: {error.message}", err=True)
        await asyncio.Event().wait()


async def _run(plugins: str | None, http: bool | None, frontends: bool, settings: Settings) -> None:
    import signal

    from stemhub.http import HubServer, plugin_routes
    from stemhub.hub import Hub

    hub = Hub(settings, plugins=plugins)
    _check_plugins(plugins, hub.pm.report)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = None
    await hub.open()
    tasks: list[asyncio.Task[None]] = []
    try:
        started: list[str] = []
        names = [name for name in hub.frontend_factories if name != "cli"] if frontends else []
        for name in names:
            try:
                hub.start_frontend(name)
            except ConfigError as error:
                if plugins is not None:
                    raise
                # installed but not configured, and not asked for by name: skip it
                typer.echo(f"skipping {name}: {error.message}", err=True)
                continue
            started.append(name)
            tasks.append(
                asyncio.create_task(
                    _serve_frontend(hub, name, plugins is not None), name=f"frontend-{name}"
                )
            )
        await hub.recover()
        wants_http = http if http is not None else bool(plugin_routes(hub) or settings.public_url)
        if wants_http:
            server = HubServer(hub)
            await server.start()
            typer.echo(f"HTTP on {server.url}")
        what = f"frontends {', '.join(started) or 'none'}; " if frontends else "HTTP only; "
        typer.echo(
            f"stemhub running: {what}backends {', '.join(sorted(hub.backend_factories))}. "
            "Ctrl-C stops."
        )
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        typer.echo("stopping: unfinished jobs stay queued and resume on the next start")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.stop()
        await hub.close()


@app.command()
def run(
    plugins: Annotated[
        str | None, typer.Option(help="Only these plugins, comma separated: discord,slack")
    ] = None,
    http: Annotated[
        bool | None, typer.Option("--http/--no-http", help="Serve the HTTP app (default: auto)")
    ] = None,
) -> None:
    """Run the chosen frontends in one process until SIGTERM or Ctrl-C."""
    settings = _settings()
    _run_async(lambda: _run(plugins, http, True, settings))


@app.command()
def serve(
    plugins: Annotated[str | None, typer.Option(help="Only these plugins")] = None,
) -> None:
    """Serve only the HTTP app (bridge, webhooks, downloads) until SIGTERM or Ctrl-C."""
    settings = _settings()
    _run_async(lambda: _run(plugins, True, False, settings))


@app.command("plugins")
def list_plugins() -> None:
    """Installed plugins: loaded, builtin, skipped, blocked or failed, and their hooks."""
    from rich.table import Table

    from stemhub.plugin.manager import get_plugin_manager

    pm = get_plugin_manager()
    report = pm.report
    table = Table(title="stemhub plugins")
    for column in ("plugin", "state", "from", "hooks"):
        table.add_column(column)
    for name, source in sorted(report.loaded.items()):
        state = "builtin" if name in report.builtin else "loaded"
        hooks = ", ".join(h.removeprefix("stemhub_") for h in pm.hooks_of(name))
        table.add_row(name, state, source, hooks)
    for name, why in sorted(report.skipped.items()):
        table.add_row(name, "skipped", why, "")
    for name in sorted(report.blocked):
        table.add_row(name, "blocked", "STEMHUB_BLOCK_PLUGINS", "")
    for name, why in sorted(report.failed.items()):
        table.add_row(name, "[red]failed[/red]", why, "")
    _console().print(table)


# jobs


async def _with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store alone (no hub, plugins or backends): what reading jobs needs.

    Reading needs no migration when the schema is current (it is, once any hub ran), so
    the migration machinery (Alembic: a third of a second) loads only when a read fails
    on a missing or older table.
    """
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from stemhub._store import Store

    for migrate in (False, True):
        store = await Store.open(settings.resolved_database_url, migrate=migrate)
        try:
            return await action(store)
        except (OperationalError, ProgrammingError):
            if migrate:
                raise
        finally:
            await store.close()
    raise AssertionError("unreachable")


async def _with_hub(settings: Settings, action: Callable[[Hub], Awaitable[T]]) -> T:
    from stemhub.hub import Hub

    async with Hub(settings, recover=False) as hub:
        return await action(hub)


async def resolve_job_id(store: Store, given: str) -> str:
    """The full id of the one job whose id starts with ``given`` (as ``jobs list`` shows)."""
    import sqlalchemy as sa

    from stemhub._store import jobs

    prefix = given.strip().lower()
    if not prefix.isalnum():
        raise StemhubError(ErrorCode.NOT_FOUND, f"There is no job {given}.")
    query = sa.select(jobs.c.id).where(jobs.c.id.startswith(prefix)).limit(6)
    async with store.engine.connect() as conn:
        found = [row[0] for row in (await conn.execute(query)).all()]
    if not found:
        raise StemhubError(ErrorCode.NOT_FOUND, f"There is no job {given}.")
    if len(found) > 1:
        shown = ", ".join(job_id[:SHORT_ID] for job_id in found[:5])
        raise StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"{given} matches several jobs ({shown}{', ...' if len(found) > 5 else ''}); "
            "give more of the id.",
        )
    return str(found[0])


@jobs_app.command("list")
def jobs_list(
    status: Annotated[JobStatus | None, typer.Option(case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    undelivered: Annotated[
        bool,
        typer.Option(
            "--undelivered",
            help="Only jobs whose delivery ended without reaching the person "
            "(`jobs retry ID` delivers again).",
        ),
    ] = False,
) -> None:
    """The newest jobs; ``jobs show`` takes the id shown (or any unique prefix)."""
    from rich.table import Table

    async def action(store: Store) -> list[Job]:
        return await store.list_jobs(
            statuses=[status] if status else None, undelivered=undelivered, limit=limit
        )

    settings = _settings()
    jobs = _run_async(lambda: _with_store(settings, action))
    table = Table()
    for column in ("id", "status", "stage", "platform", "source", "created"):
        table.add_column(column, no_wrap=column == "id")
    for job in jobs:
        table.add_row(
            job.id[:SHORT_ID],
            job.status.value,
            job.stage.value,
            job.origin.platform,
            job.request.source.display_name,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    _console().print(table)


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """One job as JSON; the id may be any unique prefix."""

    async def action(store: Store) -> Job:
        job = await store.get_job(await resolve_job_id(store, job_id))
        if job is None:
            raise StemhubError(ErrorCode.NOT_FOUND, f"There is no job {job_id}.")
        return job

    settings = _settings()
    job = _run_async(lambda: _with_store(settings, action))
    _console().print_json(job.model_dump_json())


def _job_action(job_id: str, name: str) -> Job:
    async def action(hub: Hub) -> Job:
        full = await resolve_job_id(hub.store, job_id)
        job: Job = await (hub.retry(full) if name == "retry" else hub.cancel(full))
        return job

    settings = _settings()
    return _run_async(lambda: _with_hub(settings, action))


@jobs_app.command("retry")
def jobs_retry(job_id: str) -> None:
    """Queue a failed, cancelled or expired job again (a running hub picks it up)."""
    job = _job_action(job_id, "retry")
    typer.echo(f"{job.id[:SHORT_ID]} queued again at stage {job.stage.value}")


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job that has not ended."""
    job = _job_action(job_id, "cancel")
    typer.echo(f"{job.id[:SHORT_ID]} {job.status.value}")


@app.command()
def doctor() -> None:
    """Check configuration, codecs, the store, the backends and the frontends."""
    from stemhub.doctor import run_checks

    settings = _settings()
    ok = asyncio.run(run_checks(settings))
    raise typer.Exit(EXIT_OK if ok else EXIT_FAILED)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: the command line (``sys.argv`` when ``argv`` is None)."""
    args = list(sys.argv[1:] if argv is None else argv)
    app(args, prog_name="stemhub")
    sys.exit(EXIT_OK)


__all__ = ["app", "exit_code_for", "main", "parse_stems", "print_error"]

"""The ``stemhub`` command: split files from a shell, run the frontends, manage jobs.

Exit codes: 0 success, 1 a job failed, 2 bad usage or input, 3 configuration missing,
130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stemhub.config import Settings
from stemhub.errors import ConfigError, ErrorCode, StemhubError
from stemhub.frontend import Frontend
from stemhub.hub import Hub
from stemhub.models import (
    Job,
    JobRequest,
    JobStatus,
    Origin,
    OutputFormat,
    Quality,
    Source,
    SourceKind,
    StemSet,
)
from stemhub.plugins import get_plugin_manager

app = typer.Typer(
    name="stemhub",
    help="Split songs into stems here, in Discord, in Slack and in n8n workflows.",
    no_args_is_help=True,
    add_completion=False,
)
jobs_app = typer.Typer(help="List, show, retry and cancel jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

console = Console()
err_console = Console(stderr=True)

EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_INTERRUPTED = 1, 2, 3, 130


def _exit_for(error: StemhubError) -> int:
    if isinstance(error, ConfigError) or error.code is ErrorCode.CONFIG_MISSING:
        return EXIT_CONFIG
    return EXIT_USAGE


def _fail(error: StemhubError) -> typer.Exit:
    err_console.print(f"[red]error[/red] {error.code.value}: {escape(error.message)}")
    if error.operator_message:
        err_console.print(f"  {error.operator_message}")
    return typer.Exit(_exit_for(error))


def _human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _source_for(item: str) -> Source:
    if item.startswith(("http://", "https://")):
        host = item.split("/", 3)[2].lower()
        youtube = host.endswith(("youtube.com", "youtu.be"))
        return Source(kind=SourceKind.YOUTUBE if youtube else SourceKind.URL, url=item)
    path = Path(item).expanduser()
    if not path.is_file():
        raise StemhubError(ErrorCode.NOT_FOUND, f"There is no file at {item}.")
    return Source(kind=SourceKind.FILE, path=str(path.resolve()), filename=path.name)


def _copy_outputs(hub: Hub, job: Job, dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    copied: dict[str, Path] = {}
    for stem, output in job.outputs.items():
        src = hub.outputs.path_of(job, output)
        if src is None or not src.is_file():
            continue
        target = dest / f"{stem}.{output.format.extension}"
        shutil.copyfile(src, target)
        copied[stem] = target
    return copied


def _summary(job: Job, files: dict[str, Path], backend_note: str) -> Table:
    audio = job.audio
    title = f"{job.request.source.display_name}  [dim]({backend_note})[/dim]"
    table = Table(title=title, title_justify="left")
    table.add_column("stem")
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("duration", justify="right")
    for stem, output in job.outputs.items():
        path = files.get(stem)
        where = str(path) if path else (output.url or "-")
        size = path.stat().st_size if path else output.size_bytes
        duration = f"{output.duration_s:.1f} s" if output.duration_s else "-"
        table.add_row(stem, where, _human_size(size), duration)
    if audio is not None:
        bpm = f"{audio.bpm:.1f}" if audio.bpm else "-"
        table.caption = f"BPM {bpm}   key {audio.key or '-'}"
    return table


async def _split(
    inputs: list[tuple[str, Source]],
    out: Path,
    stems: str,
    fmt: OutputFormat,
    quality: Quality,
    backend: str | None,
    settings: Settings,
) -> int:
    failures = 0
    async with Hub(settings, recover=False) as hub:
        submitted: list[tuple[str, Job, str]] = []
        for item, source in inputs:
            try:
                request = JobRequest(
                    source=source,
                    stems=stems,
                    output_format=fmt,
                    quality=quality,
                    backend=backend,
                    origin=Origin(platform="cli"),
                )
                name, why = hub.choose_backend(request)
                job = await hub.submit(request)
            except StemhubError as error:
                err_console.print(
                    f"[red]{escape(item)}[/red]: {error.code.value}: {escape(error.message)}"
                )
                failures += 1
                continue
            submitted.append((item, job, f"{name}: {why}"))
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[stage]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress:

            async def follow(item: str, job: Job) -> Job:
                bar = progress.add_task(Path(item).name[:40], total=100, stage="queued")
                final = job
                async for snapshot in hub.watch(job.id, poll_s=0.2):
                    stage = snapshot.stage.value if not snapshot.finished else "done"
                    progress.update(bar, completed=snapshot.progress, stage=stage)
                    final = snapshot
                    if snapshot.finished and snapshot.stage.value == "done":
                        break
                progress.update(bar, completed=100)
                return final

            finals = await asyncio.gather(*(follow(item, job) for item, job, _ in submitted))
        for (item, _job, note), job in zip(submitted, finals, strict=True):
            if job.status is not JobStatus.COMPLETED:
                message = escape(job.error_message or "")
                err_console.print(f"[red]{escape(item)}[/red]: {job.error_code}: {message}")
                failures += 1
                continue
            dest = out / Path(job.request.source.display_name).stem
            files = _copy_outputs(hub, job, dest)
            console.print(_summary(job, files, note))
    return EXIT_FAILED if failures else 0


@app.command()
def split(
    inputs: Annotated[
        list[str] | None, typer.Argument(help="Audio files or links.", show_default=False)
    ] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write stems.")] = Path("stems"),
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
    items = list(inputs or [])
    with contextlib.ExitStack() as stack:
        if demo:
            from stemhub.demo import write_demo_song

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            items.append(str(write_demo_song(folder / "stemhub-demo.wav")))
            console.print("Synthesized a 12 s demo song (voice, drums, bass, chords).")
        if not items:
            err_console.print("Give at least one audio file or link, or --demo.")
            raise typer.Exit(EXIT_USAGE)
        try:
            sources = [(item, _source_for(item)) for item in items]
            JobRequest(source=sources[0][1], stems=stems)
        except StemhubError as error:
            raise _fail(error) from None
        except ValueError as error:
            err_console.print(f"[red]error[/red] INVALID_REQUEST: {error}")
            raise typer.Exit(EXIT_USAGE) from None
        try:
            code = asyncio.run(_split(sources, out, stems, fmt, quality, backend, Settings()))
        except StemhubError as error:
            raise _fail(error) from None
        except ValueError as error:
            err_console.print(f"[red]error[/red] INVALID_REQUEST: {error}")
            raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(code)


async def _serve_frontend(hub: Hub, name: str, frontend: Frontend, *, required: bool) -> None:
    """Run one frontend; one that is merely installed but unconfigured is skipped."""
    try:
        await frontend.run()
    except ConfigError as error:
        if required:
            raise
        hub.frontends.pop(name, None)
        err_console.print(f"[yellow]{name} stopped[/yellow]: {escape(error.message)}")
        await asyncio.Event().wait()


async def _run(plugins: str | None, http: bool | None, settings: Settings) -> None:
    hub = Hub(settings, plugins=plugins)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = None
    await hub.open()
    tasks: list[asyncio.Task[None]] = []
    try:
        names = [name for name in hub.frontend_factories if name != "cli"]
        started: list[str] = []
        for name in names:
            try:
                frontend = hub.start_frontend(name)
            except ConfigError as error:
                if plugins is not None:
                    raise
                # installed but not configured, and not asked for by name: skip it
                err_console.print(f"[yellow]skipping {name}[/yellow]: {escape(error.message)}")
                continue
            started.append(name)
            tasks.append(
                asyncio.create_task(
                    _serve_frontend(hub, name, frontend, required=plugins is not None),
                    name=f"frontend-{name}",
                )
            )
        names = started
        await hub.recover()
        from stemhub.http import HubServer, plugin_routes

        wants_http = http if http is not None else bool(plugin_routes(hub) or settings.public_url)
        if wants_http:
            server = HubServer(hub)
            await server.start()
            console.print(f"HTTP on {server.url}")
        console.print(
            f"stemhub running: frontends {', '.join(names) or 'none'}; "
            f"backends {', '.join(sorted(hub.backend_factories))}. Ctrl-C stops."
        )
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        console.print("stopping: unfinished jobs stay queued and resume on the next start")
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
    try:
        asyncio.run(_run(plugins, http, Settings()))
    except StemhubError as error:
        raise _fail(error) from None


@app.command()
def serve(
    plugins: Annotated[str | None, typer.Option(help="Only these plugins")] = None,
) -> None:
    """Serve the HTTP app (bridge, webhooks, downloads) until SIGTERM or Ctrl-C."""
    try:
        asyncio.run(_run(plugins, True, Settings()))
    except StemhubError as error:
        raise _fail(error) from None


@app.command("plugins")
def list_plugins() -> None:
    """Installed plugins: loaded, builtin, skipped, blocked or failed, and their hooks."""
    pm = get_plugin_manager()
    report = pm.report
    table = Table(title="stemhub plugins")
    table.add_column("plugin")
    table.add_column("state")
    table.add_column("from")
    table.add_column("hooks")
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
    console.print(table)


async def _with_hub(settings: Settings, action: Any) -> Any:
    async with Hub(settings, recover=False) as hub:
        return await action(hub)


@jobs_app.command("list")
def jobs_list(
    status: Annotated[JobStatus | None, typer.Option(case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """The newest jobs."""

    async def action(hub: Hub) -> list[Job]:
        return await hub.store.list_jobs(statuses=[status] if status else None, limit=limit)

    jobs = asyncio.run(_with_hub(Settings(), action))
    table = Table()
    for column in ("id", "status", "stage", "platform", "source", "created"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            job.id,
            job.status.value,
            job.stage.value,
            job.origin.platform,
            job.request.source.display_name,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


def _job_action(job_id: str, name: str) -> Job:
    async def action(hub: Hub) -> Job:
        if name == "show":
            return await hub.require_job(job_id)
        method = getattr(hub, name)
        job: Job = await method(job_id)
        return job

    try:
        job: Job = asyncio.run(_with_hub(Settings(), action))
    except StemhubError as error:
        raise _fail(error) from None
    return job


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """One job as JSON."""
    console.print_json(_job_action(job_id, "show").model_dump_json())


@jobs_app.command("retry")
def jobs_retry(job_id: str) -> None:
    """Queue a failed, cancelled or expired job again (a running hub picks it up)."""
    job = _job_action(job_id, "retry")
    console.print(f"{job.id} queued again at stage {job.stage.value}")


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job that has not ended."""
    job = _job_action(job_id, "cancel")
    console.print(f"{job.id} {job.status.value}")


@app.command()
def doctor() -> None:
    """Check configuration, codecs, the store and the backends."""
    from stemhub.doctor import run_checks

    ok = asyncio.run(run_checks(Settings(), console))
    raise typer.Exit(0 if ok else EXIT_FAILED)


def main() -> None:
    """Entry point: add plugin commands, then run typer."""
    try:
        get_plugin_manager().hook.stemhub_register_commands(cli=app)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
        err_console.print(f"[yellow]warning[/yellow] a plugin failed to add commands: {exc}")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


__all__ = ["app", "main"]

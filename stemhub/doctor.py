"""``stemhub doctor``: what works on this machine and what to fix, one line per check.

Each line starts with ``ok`` (works, or for a frontend: its settings are complete),
``off`` (not set up, which is fine until you want it: a backend without its key, a
frontend without its token), ``?`` (a frontend that registered no check and builds
without complaint: what it needs shows when it connects) or ``FAIL`` (set up but broken:
a plugin that does not import, a key the API refuses, an unreadable store). Only
``FAIL`` makes the command exit 1. Every installed backend and frontend gets a line.

A frontend's settings are checked by the ``check`` it registered
(:data:`stemhub.plugin.spec.ConfigCheck`): it reads the settings only, so no frontend is
built, no platform library imported and nothing connected; it raises
:class:`~stemhub.errors.ConfigError` naming what is missing, or returns what is set up
("bot token set, Socket Mode"). A frontend without a check is built instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stemhub.config import CONFIG_FILE_ENV, Settings, config_file
from stemhub.errors import ConfigError, ErrorCode, StemhubError
from stemhub.plugin.manager import await_me_maybe

if TYPE_CHECKING:
    from stemhub.hub import Hub

OK, OFF, UNKNOWN, FAIL = "ok", "off", "?", "FAIL"
_COLOURS = {OK: "green", OFF: "yellow", UNKNOWN: "yellow", FAIL: "red"}
"""Shown on a terminal only (``typer.echo`` drops colours elsewhere); plain text, no rich:
doctor's start-up is mostly the imports it needs."""
NOT_SET_UP = frozenset({ErrorCode.CONFIG_MISSING})
"""Errors that mean "not configured" rather than "broken"."""

Report = Callable[[str, str, str], None]


def _redacted_db_url(settings: Settings) -> str:
    from sqlalchemy.engine.url import make_url

    from stemhub._store import normalise_url

    url = make_url(normalise_url(settings.resolved_database_url))
    return url.render_as_string(hide_password=True)


def _codecs() -> str:
    import av

    wanted = {"mp3": "mp3", "flac": "flac", "aac": "aac", "vorbis": "ogg", "opus": "opus"}
    found = []
    for codec in wanted:
        try:
            av.codec.Codec(codec, "r")
            found.append(codec)
        except Exception:  # noqa: BLE001, S112 - absence of a codec is the answer
            continue
    missing = sorted(set(wanted) - set(found))
    text = f"PyAV {av.__version__} (FFmpeg decoders: {', '.join(found)})"
    if missing:
        raise RuntimeError(text + f"; missing decoders: {', '.join(missing)}")
    return text


def _config_sources() -> str:
    toml = config_file()
    where = f"{toml.absolute()} ({'read' if toml.is_file() else 'absent'})"
    if CONFIG_FILE_ENV in os.environ:
        where += f" from {CONFIG_FILE_ENV}"
    env = Path(".env")
    return f"environment, {env.absolute()} ({'read' if env.is_file() else 'absent'}), {where}"


def _facts(facts: dict[str, Any]) -> str:
    shown = {k: v for k, v in facts.items() if k not in ("available", "todo")}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "ready"


def _state_of(error: StemhubError) -> str:
    return OFF if isinstance(error, ConfigError) or error.code in NOT_SET_UP else FAIL


def _error_text(error: StemhubError) -> str:
    hint = f" {error.operator_message}" if error.operator_message else ""
    return f"{error.code.value}: {error.message}{hint}"


async def _backends(hub: Hub, report: Report) -> None:
    from stemhub.models import JobRequest, Source, SourceKind

    for name in sorted(hub.backend_factories):
        try:
            facts = await hub.backend(name).describe()
        except StemhubError as error:
            report(f"backend {name}", _state_of(error), _error_text(error))
            continue
        if facts.get("available") is False:
            report(f"backend {name}", OFF, f"not ready: {facts.get('todo', '')} ({_facts(facts)})")
        else:
            report(f"backend {name}", OK, _facts(facts))
    probe = JobRequest(source=Source(kind=SourceKind.FILE, path="song.wav"))
    name, why = hub.choose_backend(probe)
    report("default", OK, f"splits go to {name} ({why})")


async def _frontends(hub: Hub, report: Report) -> None:
    for name in sorted(hub.frontend_factories):
        if name == "cli":
            continue
        check = hub.frontend_checks.get(name)
        try:
            if check is None:
                hub.start_frontend(name)  # may refuse at once, naming what is missing
                report(
                    f"frontend {name}",
                    UNKNOWN,
                    "installed; its settings are checked only "
                    f"when it connects (`stemhub run --plugins {name}`)",
                )
                continue
            detail = await await_me_maybe(check(hub))
        except StemhubError as error:
            report(f"frontend {name}", _state_of(error), _error_text(error))
            continue
        except Exception as exc:  # noqa: BLE001 - a broken plugin is a FAIL line, not a crash
            report(f"frontend {name}", FAIL, f"{type(exc).__name__}: {exc}")
            continue
        report(f"frontend {name}", OK, str(detail) if detail else "configured")


async def run_checks(settings: Settings) -> bool:
    """Print one line per check; False when any check FAILed."""
    from stemhub.hub import Hub

    ok = True

    def report(name: str, state: str, text: str) -> None:
        nonlocal ok
        ok = ok and state != FAIL
        mark = typer.style(f"{state:<4}", fg=_COLOURS[state])
        typer.echo(f"{mark} {name:<19} {text}")

    report("config", OK, _config_sources())
    report(
        "data dir",
        OK,
        f"{settings.data_dir} (stems of chat and HTTP jobs: {settings.resolved_output_dir})",
    )
    report("database", OK, _redacted_db_url(settings))
    try:
        report("codecs", OK, _codecs())
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure
        report("codecs", FAIL, str(exc))
    try:
        hub = Hub(settings, recover=False)
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure
        report("plugins", FAIL, f"{type(exc).__name__}: {exc}")
        return False
    plugins = hub.pm.report
    for plugin, why in sorted(plugins.failed.items()):
        report(f"plugin {plugin}", FAIL, why)
    loaded = sorted(set(plugins.loaded) - plugins.builtin)
    report("plugins", OK, f"loaded {', '.join(loaded) or 'none'} (and the builtins)")
    try:
        async with hub:
            revision = await hub.store.schema_revision()
            counts = await hub.store.count_by_status()
            report("store", OK, f"{hub.store.dialect}, schema {revision}, jobs {counts or 0}")
            await _backends(hub, report)
            await _frontends(hub, report)
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure
        report("store", FAIL, f"{type(exc).__name__}: {exc}")
    return ok


__all__ = ["run_checks"]

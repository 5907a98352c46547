"""``stemhub doctor``: what works on this machine and what to fix, one line per check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine.url import make_url

from stemhub.config import Settings
from stemhub.errors import StemhubError
from stemhub.hub import Hub
from stemhub.store import normalise_url, schema_version

Check = Callable[[], Awaitable[str]]


def _redacted_db_url(settings: Settings) -> str:
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


async def run_checks(settings: Settings, console: Console) -> bool:
    ok = True

    def report(name: str, good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        mark = "[green]ok[/green]  " if good else "[red]FAIL[/red]"
        console.print(f"{mark} {name:<12} {escape(text)}")

    report("data dir", True, str(settings.data_dir))
    report("database", True, _redacted_db_url(settings))
    try:
        report("codecs", True, _codecs())
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure
        report("codecs", False, str(exc))
    try:
        async with Hub(settings, recover=False) as hub:
            async with hub.store.engine.connect() as conn:
                revision = await conn.run_sync(schema_version)
            counts = await hub.store.count_by_status()
            report("store", True, f"{hub.store.dialect}, schema {revision}, jobs {counts or 0}")
            for name in sorted(hub.backend_factories):
                try:
                    facts = await hub.backend(name).describe()
                    detail = ", ".join(f"{k}={v}" for k, v in facts.items()) or "ready"
                    report(f"backend {name}", True, detail)
                except StemhubError as error:
                    hint = f" ({error.operator_message})" if error.operator_message else ""
                    # a backend without its key is not a broken hub
                    report(f"backend {name}", True, f"unavailable: {error.message}{hint}")
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure
        report("store", False, f"{type(exc).__name__}: {exc}")
    return ok


__all__ = ["run_checks"]

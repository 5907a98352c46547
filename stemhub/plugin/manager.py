"""The plugin manager: discovery through entry points, and the typed hook facade.

Discovery: every plugin, the core's own backends included, is a module named by an entry
point in the group ``stemhub``. ``STEMHUB_PLUGINS`` (or ``--plugins``) loads only the
named non-builtin plugins; ``STEMHUB_BLOCK_PLUGINS`` blocks any. A plugin that fails to
import, or declares a wrapper implementation, is reported and skipped so one broken
install never takes the others down; ``check_pending`` catches misspelled hook names.

The facade: no caller names a hook by string or touches ``pm.hook``. The hub calls
``hub.hooks.job_completed(job)`` and :class:`Hooks` finds the implementations through
pluggy, in pluggy's order (``tryfirst``/``trylast`` honoured, last registered first),
and awaits each async one in turn (datasette's ``await_me_maybe``).

Wrapper implementations (``wrapper=True`` / ``hookwrapper=True``) are refused when a
plugin is registered, with an error naming the plugin and hook: they wrap a generator
around the call, which cannot span the awaits of async implementations, and pluggy would
otherwise call them as plain functions that never run their code.

Observer hooks (job events, startup, shutdown) are isolated: an implementation that
raises is logged with its plugin's name and the others still run; the job goes on.
Policy hooks (``validate_request``, ``check_quota``) propagate the first refusal.

Commands have no hub: :func:`plugin_commands` collects what plugins add to the ``stemhub``
command (names, help and where each lives) without importing any of it.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from stemhub.plugin import spec
from stemhub.plugin.marker import PROJECT

if TYPE_CHECKING:
    import typer
    from starlette.routing import BaseRoute

    from stemhub.hub import Hub
    from stemhub.models import Job, JobRequest
    from stemhub.plugin.spec import CommandTarget, RegisterBackend, RegisterFrontend

log = logging.getLogger(__name__)


class WrapperRefused(TypeError):
    """A plugin declared a wrapper implementation, which stemhub does not run."""


def refuse_wrappers(pm: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    """Raise :class:`WrapperRefused` if ``plugin`` has a wrapper hook implementation."""
    for attr in dir(plugin):
        if not attr.startswith("stemhub_"):
            continue
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts and (opts.get("wrapper") or opts.get("hookwrapper")):
            who = name or getattr(plugin, "__name__", repr(plugin))
            raise WrapperRefused(
                f"plugin {who}: {attr} is declared as a wrapper; stemhub awaits async "
                "hooks one by one and cannot run wrappers around them. Use a plain "
                "implementation (with tryfirst/trylast to order it)."
            )


async def await_me_maybe(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


ENTRY_POINT_GROUP = "stemhub"
CORE_DISTRIBUTION = "stemhub"


@dataclass
class PluginReport:
    """What happened to each entry point while loading; ``stemhub plugins`` prints it."""

    loaded: dict[str, str] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)


class StemhubPluginManager(pluggy.PluginManager):
    report: PluginReport

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register a plugin; one with a wrapper implementation is refused (WrapperRefused)."""
        refuse_wrappers(self, plugin, name)
        return super().register(plugin, name=name)

    def hooks_of(self, name: str) -> list[str]:
        """The hook names a registered plugin implements."""
        plugin = self.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.get_hookcallers(plugin) or [])


def _split_names(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    names = {name.strip() for name in value if name.strip()}
    return names


def _distribution_name(ep: EntryPoint) -> str:
    dist = ep.dist
    return dist.name if dist is not None else ""


def _load(ep: EntryPoint) -> object:
    plugin: object = ep.load()
    return plugin


def get_plugin_manager(
    *,
    only: str | Iterable[str] | None = None,
    block: str | Iterable[str] | None = None,
    extra: Iterable[tuple[str, object]] = (),
) -> StemhubPluginManager:
    """Build a plugin manager with builtins and the selected installed plugins.

    ``only``/``block`` default to the ``STEMHUB_PLUGINS``/``STEMHUB_BLOCK_PLUGINS`` env
    vars. ``extra`` registers objects directly (tests, embedding applications).
    """
    pm = StemhubPluginManager(PROJECT)
    pm.add_hookspecs(spec)
    report = PluginReport()
    pm.report = report
    wanted = _split_names(only if only is not None else os.environ.get("STEMHUB_PLUGINS"))
    blocked = _split_names(block if block is not None else os.environ.get("STEMHUB_BLOCK_PLUGINS"))
    blocked = blocked or set()

    seen: set[str] = set()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        is_builtin = _distribution_name(ep) == CORE_DISTRIBUTION
        if ep.name in blocked:
            report.blocked.add(ep.name)
            pm.set_blocked(ep.name)
            continue
        if not is_builtin and wanted is not None and ep.name not in wanted:
            report.skipped[ep.name] = "not selected by --plugins / STEMHUB_PLUGINS"
            continue
        try:
            plugin = _load(ep)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
            report.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s failed to load and was skipped: %s", ep.name, exc)
            continue
        pm.register(plugin, name=ep.name)
        report.loaded[ep.name] = _distribution_name(ep) or ep.value
        if is_builtin:
            report.builtin.add(ep.name)

    if wanted is not None:
        for name in sorted(wanted - seen):
            report.failed[name] = "no installed plugin has this name"

    for name, plugin in extra:
        pm.register(plugin, name=name)
        report.loaded[name] = "registered directly"
    pm.check_pending()
    return pm


@dataclass(frozen=True)
class PluginCommand:
    """A command group a plugin adds to the ``stemhub`` command, not imported yet."""

    name: str
    target: CommandTarget
    help: str
    plugin: str

    def app(self) -> typer.Typer:
        """The group's ``typer.Typer``, importing its module on first use."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        app: typer.Typer = getattr(importlib.import_module(module), attribute)
        return app


def plugin_commands(
    pm: pluggy.PluginManager, *, taken: Iterable[str] = ()
) -> dict[str, PluginCommand]:
    """The command groups every plugin registers, by name; a name in ``taken`` (the core's
    own commands) or registered twice is refused with a warning naming the plugin.

    A plugin whose hook raises is logged and skipped: one broken plugin must not take
    the whole command line down.
    """
    found: dict[str, PluginCommand] = {}
    refused = set(taken)
    caller: pluggy.HookCaller = pm.hook.stemhub_register_commands
    for impl in reversed(caller.get_hookimpls()):
        plugin = impl.plugin_name

        def register(
            name: str,
            target: CommandTarget,
            *,
            help: str,
            plugin: str = plugin,
        ) -> None:
            if name in refused or name in found:
                owner = found[name].plugin if name in found else "stemhub"
                log.warning("plugin %s: the command %r is %s's; not added", plugin, name, owner)
                return
            found[name] = PluginCommand(name, target, help, plugin)

        try:
            impl.function(register=register)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
            log.warning("plugin %s failed to register its commands: %s", plugin, exc)
    return found


class Hooks:
    """Every hook of :mod:`stemhub.plugin.spec` as a typed method, bound to one hub."""

    def __init__(self, pm: pluggy.PluginManager, hub: Hub) -> None:
        self._pm = pm
        self._hub = hub

    async def _call(self, name: str, *, observer: bool, **kwargs: Any) -> list[Any]:
        caller: pluggy.HookCaller = getattr(self._pm.hook, name)
        results: list[Any] = []
        # pluggy keeps implementations in reverse call order (trylast first)
        for impl in reversed(caller.get_hookimpls()):
            args = [kwargs[arg] for arg in impl.argnames]
            try:
                results.append(await await_me_maybe(impl.function(*args)))
            except Exception:
                if not observer:
                    raise
                log.exception("plugin %s failed in %s", impl.plugin_name, name)
        return results

    def _call_sync(self, name: str, **kwargs: Any) -> None:
        caller: pluggy.HookCaller = getattr(self._pm.hook, name)
        caller(**kwargs)

    # registration (synchronous: they only record factories and routes)

    def register_backends(self, register: RegisterBackend) -> None:
        self._call_sync("stemhub_register_backends", register=register)

    def register_frontends(self, register: RegisterFrontend) -> None:
        self._call_sync("stemhub_register_frontends", register=register)

    def register_routes(self, register: Callable[[BaseRoute], None]) -> None:
        self._call_sync("stemhub_register_routes", register=register, hub=self._hub)

    # policy: the first refusal propagates

    async def validate_request(self, request: JobRequest) -> None:
        await self._call("stemhub_validate_request", observer=False, hub=self._hub, request=request)

    async def check_quota(self, request: JobRequest) -> None:
        await self._call("stemhub_check_quota", observer=False, hub=self._hub, request=request)

    # observers: isolated

    async def startup(self) -> None:
        await self._call("stemhub_startup", observer=True, hub=self._hub)

    async def shutdown(self) -> None:
        await self._call("stemhub_shutdown", observer=True, hub=self._hub)

    async def job_created(self, job: Job) -> None:
        await self._call("stemhub_job_created", observer=True, hub=self._hub, job=job)

    async def job_started(self, job: Job) -> None:
        await self._call("stemhub_job_started", observer=True, hub=self._hub, job=job)

    async def job_progress(self, job: Job) -> None:
        await self._call("stemhub_job_progress", observer=True, hub=self._hub, job=job)

    async def job_completed(self, job: Job) -> None:
        await self._call("stemhub_job_completed", observer=True, hub=self._hub, job=job)

    async def job_failed(self, job: Job) -> None:
        await self._call("stemhub_job_failed", observer=True, hub=self._hub, job=job)

    async def job_delivered(self, job: Job) -> None:
        await self._call("stemhub_job_delivered", observer=True, hub=self._hub, job=job)


__all__ = [
    "ENTRY_POINT_GROUP",
    "Hooks",
    "PluginCommand",
    "PluginReport",
    "StemhubPluginManager",
    "WrapperRefused",
    "await_me_maybe",
    "get_plugin_manager",
    "plugin_commands",
    "refuse_wrappers",
]

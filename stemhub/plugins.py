"""Plugin discovery: builtins and third-party plugins through the same entry points.

Every plugin, the core's own backends included, is a module named by an entry point in
the group ``stemhub``. ``STEMHUB_PLUGINS`` (or ``--plugins``) loads only the named
non-builtin plugins; ``STEMHUB_BLOCK_PLUGINS`` blocks any. A plugin that fails to import
is reported and skipped so one broken install never takes the others down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

import pluggy

from stemhub import hookspecs

log = logging.getLogger(__name__)

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
    pm = StemhubPluginManager("stemhub")
    pm.add_hookspecs(hookspecs)
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


__all__ = ["PluginReport", "StemhubPluginManager", "get_plugin_manager"]

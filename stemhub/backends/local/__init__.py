"""The built-in ``local`` backend: stem separation on this machine, nothing to download.

Registered like any third-party plugin, through the ``stemhub`` entry point
``local = "stemhub.backends.local"``. See ``docs/engine.md`` for how the engine works
and what quality to expect.
"""

from __future__ import annotations

from collections.abc import Callable

from stemhub.backends.local.backend import LocalBackend
from stemhub.hookspecs import BackendFactory, hookimpl


@hookimpl
def stemhub_register_backends(register: Callable[[str, BackendFactory], None]) -> None:
    register("local", LocalBackend)


__all__ = ["LocalBackend", "stemhub_register_backends"]

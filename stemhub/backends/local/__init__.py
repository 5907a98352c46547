"""The built-in ``local`` backend: stem separation on this machine, nothing to download.

Registered like any third-party plugin, through the ``stemhub`` entry point
``local = "stemhub.backends.local"``. Every hub start loads this module, so it stays
light: the engine (numpy, scipy, the model) is imported when the backend is first
built. See ``docs/engine.md`` for how the engine works and what quality to expect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stemhub.hookspecs import BackendFactory, hookimpl

if TYPE_CHECKING:
    from stemhub.backends.local.backend import LocalBackend
    from stemhub.hub import Hub


def _local_backend(hub: Hub) -> LocalBackend:
    from stemhub.backends.local.backend import LocalBackend

    return LocalBackend(hub)


@hookimpl
def stemhub_register_backends(register: Callable[[str, BackendFactory], None]) -> None:
    register("local", _local_backend)


def __getattr__(name: str) -> object:
    if name == "LocalBackend":
        from stemhub.backends.local.backend import LocalBackend

        return LocalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LocalBackend", "stemhub_register_backends"]

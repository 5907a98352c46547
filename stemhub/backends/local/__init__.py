"""The built-in ``local`` backend: stem separation on this machine, nothing to download.

Registered like any third-party plugin, through the ``stemhub`` entry point
``local = "stemhub.backends.local"``. Every hub start loads this module, so it stays
light: the engine (numpy, scipy, the model) is imported when the backend is first
built. See ``docs/engine.md`` for how the engine works and what quality to expect.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stemhub.plugin.spec import RegisterBackend, hookimpl

if TYPE_CHECKING:
    from stemhub.backends.local.backend import LocalBackend
    from stemhub.hub import Hub

WEIGHTS_FILE = Path(__file__).with_name("weights.npz")
"""The engine's model (:mod:`.model`), here so that describing the backend loads no numpy."""


def _local_backend(hub: Hub) -> LocalBackend:
    from stemhub.backends.local.backend import LocalBackend

    return LocalBackend(hub)


def _always(_hub: Hub) -> str:
    return "the built-in engine needs no key, GPU or download"


@hookimpl
def stemhub_register_backends(register: RegisterBackend) -> None:
    register("local", _local_backend, priority=10, ready=_always)


def __getattr__(name: str) -> object:
    if name == "LocalBackend":
        from stemhub.backends.local.backend import LocalBackend

        return LocalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["WEIGHTS_FILE", "LocalBackend", "stemhub_register_backends"]

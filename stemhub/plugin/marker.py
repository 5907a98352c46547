"""The markers of stemhub's hooks: plugins use ``from stemhub import hookimpl``."""

from __future__ import annotations

import pluggy

PROJECT = "stemhub"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]

"""The hosted StemSplit API backend (a builtin plugin).

This module only registers it: the backend (:mod:`.backend`, with its HTTP client,
pacer and webhook receiver) is imported when a hub first uses it, so commands that never
separate (``stemhub --help``, ``jobs list``) do not pay for httpx and the wire models.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from stemhub.errors import ConfigError
from stemhub.plugin.marker import hookimpl

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from stemhub.backends.stemsplit.backend import StemSplitBackend
    from stemhub.backends.stemsplit.settings import StemSplitSettings
    from stemhub.hub import Hub
    from stemhub.plugin.spec import RegisterBackend


_read: weakref.WeakKeyDictionary[Hub, StemSplitSettings] = weakref.WeakKeyDictionary()


def _settings(hub: Hub) -> StemSplitSettings:
    """Read once per hub, like the core settings (``choose_backend`` asks for every job)."""
    from stemhub.backends.stemsplit.settings import StemSplitSettings

    if hub not in _read:
        _read[hub] = StemSplitSettings()
    return _read[hub]


def make_backend(hub: Hub) -> StemSplitBackend:
    """The backend on :class:`StemSplitSettings` read from the environment, ``.env`` and
    ``[stemsplit]``, refused up front without a key: nothing works without one, and the
    refusal imports no HTTP client (``stemhub doctor`` says "off" in no time).

    Code that needs other settings (a test's fake, a benchmark) registers its own
    factory that builds ``StemSplitBackend(hub.settings, StemSplitSettings(...))``.
    """
    from stemhub.backends.stemsplit.settings import KEY_SETTING

    stemsplit = _settings(hub)
    if not stemsplit.has_key:
        raise ConfigError(KEY_SETTING, "missing")
    from stemhub.backends.stemsplit.backend import make_backend as build

    return build(hub, stemsplit)


def _key_set(hub: Hub) -> str | None:
    from stemhub.backends.stemsplit.settings import KEY_SETTING

    return f"{KEY_SETTING} is set" if _settings(hub).has_key else None


@hookimpl
def stemhub_register_backends(register: RegisterBackend) -> None:
    register("stemsplit", make_backend, priority=30, ready=_key_set)


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    """The webhook receiver, only on hubs with a public URL (nobody could reach it else)."""
    if not hub.settings.public_url:
        return
    from starlette.responses import Response
    from starlette.routing import Route

    from stemhub.backends.stemsplit.backend import StemSplitBackend
    from stemhub.backends.stemsplit.webhooks import WEBHOOK_PATH

    async def endpoint(request: Request) -> Response:
        try:
            backend = hub.backend("stemsplit")
        except ConfigError:  # no key: this hub started no job there
            return Response(status_code=404)
        if not isinstance(backend, StemSplitBackend):
            return Response(status_code=404)
        return await backend.receive_webhook(request)

    register(Route(WEBHOOK_PATH, endpoint, methods=["POST"]))


__all__ = ["make_backend", "stemhub_register_backends", "stemhub_register_routes"]

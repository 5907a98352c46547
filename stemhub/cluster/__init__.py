"""Scale-out: separation on ``stemhub worker`` processes, inputs and stems in an object store.

A builtin plugin (entry point ``cluster``). With ``STEMHUB_BROKER_URL`` unset it does
nothing but add the ``stemhub worker`` command: the quick start stays one process. With a
broker, a hub's backends become :class:`~stemhub.cluster.proxy.QueuedBackend` proxies at
startup, and the hub removes the objects of delivered jobs past their retention.
Every heavy import (Celery, obstore) waits until a broker is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stemhub.plugin.marker import hookimpl

if TYPE_CHECKING:
    from stemhub.hub import Hub
    from stemhub.plugin.spec import RegisterCommand


@hookimpl
def stemhub_register_commands(register: RegisterCommand) -> None:
    register(
        "worker",
        "stemhub.cluster.command:app",
        help="Take separation tasks from the broker (STEMHUB_BROKER_URL) and run them here.",
    )


@hookimpl
async def stemhub_startup(hub: Hub) -> None:
    if hub.settings.broker_url is None:
        return
    from stemhub.cluster.attach import attach

    await attach(hub)


@hookimpl
async def stemhub_shutdown(hub: Hub) -> None:
    if hub.settings.broker_url is None:
        return
    from stemhub.cluster.attach import detach

    await detach(hub)


__all__ = ["stemhub_register_commands", "stemhub_shutdown", "stemhub_startup"]

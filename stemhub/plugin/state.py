"""Plugin state on the store: a plugin's key-value namespace, and state without a hub.

A running hub hands plugins :class:`NamespacedKV` through ``PluginHub.kv``. A plugin's
command (``stemhub keys create``) needs the same state and the hub's sealer, but not a
hub: :func:`open_plugin_state` opens the store and the sealer of the settings and
nothing else (no plugins, backends, leases or recovery), so it runs beside a hub that
uses the same database.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stemhub._sealing import Sealer
    from stemhub._store import Store
    from stemhub.config import Settings
    from stemhub.plugin.api import KeyValue, PluginState


class NamespacedKV:
    """One plugin's slice of the store's key-value table."""

    def __init__(self, store: Store, namespace: str) -> None:
        self._store = store
        self.namespace = namespace

    async def get(self, key: str) -> Any | None:
        return await self._store.kv_get(self.namespace, key)

    async def put(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        await self._store.kv_put(self.namespace, key, value, ttl_s=ttl_s)

    async def add(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        return await self._store.kv_add(self.namespace, key, value, ttl_s=ttl_s)

    async def delete(self, key: str) -> bool:
        return await self._store.kv_delete(self.namespace, key)

    async def items(self, *, limit: int = 1000) -> list[tuple[str, Any]]:
        return await self._store.kv_items(self.namespace, limit=limit)


class _StoreState:
    """:class:`stemhub.PluginState` on an open store and the hub's sealer."""

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    def kv(self, namespace: str) -> KeyValue:
        return NamespacedKV(self._store, namespace)

    def seal(self, plaintext: str, *, purpose: str) -> str:
        return self._sealer.seal(plaintext, purpose=purpose)

    def unseal(self, sealed: str, *, purpose: str) -> str:
        return self._sealer.open(sealed, purpose=purpose)


@contextlib.asynccontextmanager
async def open_plugin_state(settings: Settings | None = None) -> AsyncIterator[PluginState]:
    """Plugin state and secrets of the hub these settings describe, without the hub.

    The store is migrated on open (a command may be the first thing run on a new
    install); secrets sealed here open in the hub and the other way round.
    """
    from stemhub._sealing import Sealer
    from stemhub._store import Store
    from stemhub.config import Settings

    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sealer = Sealer(settings.resolved_signing_key())
    store = await Store.open(settings.resolved_database_url)
    try:
        yield _StoreState(store, sealer)
    finally:
        await store.close()


if TYPE_CHECKING:

    def _a_store_state_is_plugin_state(state: _StoreState) -> PluginState:
        """mypy checks here that the hub-less state offers what PluginState promises."""
        return state


__all__ = ["NamespacedKV", "open_plugin_state"]

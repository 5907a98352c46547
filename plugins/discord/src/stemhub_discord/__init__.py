"""stemhub for Discord: /split and "Split stems" with progress and reliable delivery.

Every stemhub process imports this package (the entry point names a module inside it),
so :class:`DiscordFrontend`, and with it discord.py, is imported on first use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stemhub_discord.settings import DiscordSettings, GuildPolicy

if TYPE_CHECKING:
    from stemhub_discord.frontend import DiscordFrontend


def __getattr__(name: str) -> object:
    if name == "DiscordFrontend":
        from stemhub_discord.frontend import DiscordFrontend

        return DiscordFrontend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DiscordFrontend", "DiscordSettings", "GuildPolicy"]

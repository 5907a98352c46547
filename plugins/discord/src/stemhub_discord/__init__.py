"""stemhub for Discord: /split and "Split stems" with progress and reliable delivery."""

from stemhub_discord.frontend import DiscordFrontend
from stemhub_discord.settings import DiscordSettings, GuildPolicy

__all__ = ["DiscordFrontend", "DiscordSettings", "GuildPolicy"]

"""The result message's components, dispatched by their ``custom_id`` after any restart.

They are discord.py ``DynamicItem``s: the job id lives in the ``custom_id``, so a click on
a week-old result still reaches the right job, and discord.py keeps no per-message view
in memory. The clicks are handled by the client's :class:`ComponentHandler` (the
frontend), never in here.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, Self, runtime_checkable

import discord

from stemhub import StemSet

LINKS_PREFIX = "stemhub:links:"
AGAIN_PREFIX = "stemhub:again:"

AGAIN_OPTIONS: list[tuple[str, str]] = [
    ("Vocals + instrumental", StemSet.BOTH.value),
    ("4 stems", StemSet.FOUR_STEMS.value),
    ("6 stems", StemSet.SIX_STEMS.value),
    ("Vocals only", StemSet.VOCALS.value),
    ("Instrumental only", StemSet.INSTRUMENTAL.value),
]


@runtime_checkable
class ComponentHandler(Protocol):
    async def on_fresh_links(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...

    async def on_split_again(
        self, interaction: discord.Interaction[Any], job_id: str, stems: str
    ) -> None: ...


def _handler(interaction: discord.Interaction[Any]) -> ComponentHandler | None:
    handler = getattr(interaction.client, "frontend", None)
    return handler if isinstance(handler, ComponentHandler) else None


class FreshLinksButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=re.escape(LINKS_PREFIX) + r"(?P<job_id>[0-9a-f]{32})",
):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Get fresh links",
                style=discord.ButtonStyle.secondary,
                emoji="\N{LINK SYMBOL}",
                custom_id=LINKS_PREFIX + job_id,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.on_fresh_links(interaction, self.job_id)


class SplitAgainSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=re.escape(AGAIN_PREFIX) + r"(?P<job_id>[0-9a-f]{32})",
):
    def __init__(self, job_id: str, *, exclude: str | None = None) -> None:
        options = [
            discord.SelectOption(label=label, value=value)
            for label, value in AGAIN_OPTIONS
            if value != exclude
        ]
        super().__init__(
            discord.ui.Select(
                placeholder="Split again as ...",
                custom_id=AGAIN_PREFIX + job_id,
                options=options,
                min_values=1,
                max_values=1,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = _handler(interaction)
        values = self.item.values
        if handler is not None and values:
            await handler.on_split_again(interaction, self.job_id, values[0])


__all__ = [
    "AGAIN_OPTIONS",
    "AGAIN_PREFIX",
    "LINKS_PREFIX",
    "ComponentHandler",
    "FreshLinksButton",
    "SplitAgainSelect",
]

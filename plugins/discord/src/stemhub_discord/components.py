"""The result message's components, dispatched by their ``custom_id`` after any restart.

They are discord.py ``DynamicItem``s: the job id lives in the ``custom_id``, so a click on
a week-old result still reaches the right job, and discord.py keeps no per-message view
in memory. The clicks are handled by the client's :class:`ComponentHandler` (the
frontend), never in here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

import discord

from stemhub_discord.stems import AGAIN_OPTIONS

LINKS_PREFIX = "stemhub:links:"
AGAIN_PREFIX = "stemhub:again:"
CANCEL_PREFIX = "stemhub:cancel:"
PICK_PREFIX = "stemhub:pick:"


@runtime_checkable
class ComponentHandler(Protocol):
    async def on_fresh_links(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...

    async def on_split_again(
        self, interaction: discord.Interaction[Any], job_id: str, stems: str
    ) -> None: ...

    async def on_cancel(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...

    async def on_pick(
        self, interaction: discord.Interaction[Any], key: str, index: int
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
    def __init__(self, job_id: str, options: Sequence[tuple[str, str]] = AGAIN_OPTIONS) -> None:
        super().__init__(
            discord.ui.Select(
                placeholder="Split again as ...",
                custom_id=AGAIN_PREFIX + job_id,
                options=[discord.SelectOption(label=label, value=v) for label, v in options],
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


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=re.escape(CANCEL_PREFIX) + r"(?P<job_id>[0-9a-f]{32})",
):
    """On the progress message: stop the split (only for the person who asked)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel", style=discord.ButtonStyle.danger, custom_id=CANCEL_PREFIX + job_id
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
            await handler.on_cancel(interaction, self.job_id)


class PickAttachmentSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=re.escape(PICK_PREFIX) + r"(?P<key>[0-9a-f]{16})",
):
    """Which of a message's audio files to split (the files wait in the hub's store)."""

    def __init__(self, key: str, names: list[str] | None = None) -> None:
        options = [
            discord.SelectOption(label=name[:100], value=str(index))
            for index, name in enumerate((names or ["?"])[:25])
        ]
        super().__init__(
            discord.ui.Select(
                placeholder="Which file?",
                custom_id=PICK_PREFIX + key,
                options=options,
                min_values=1,
                max_values=1,
            )
        )
        self.key = key

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls(match["key"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = _handler(interaction)
        values = self.item.values
        if handler is not None and values:
            await handler.on_pick(interaction, self.key, int(values[0]))


__all__ = [
    "AGAIN_PREFIX",
    "CANCEL_PREFIX",
    "LINKS_PREFIX",
    "PICK_PREFIX",
    "CancelButton",
    "ComponentHandler",
    "FreshLinksButton",
    "PickAttachmentSelect",
    "SplitAgainSelect",
]

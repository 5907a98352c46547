"""The stems a person may ask for: the choices, their names, and what the backend can do.

/split's ``stems`` choices, the "Split again as ..." select and the check made before a
command is deferred all ask :func:`offered` and :func:`check_stems`, which ask the hub
the way it decides at submit time (``choose_backend``, then that backend's
capabilities). So a person is offered only what the hub would accept, and a choice that
a backend cannot do (a command registered before the backend changed, an old button) is
refused privately before anything is downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from stemhub import (
    ALL_STEMS,
    ErrorCode,
    Job,
    JobRequest,
    OutputFormat,
    PluginHub,
    RequestRejected,
    Source,
    SourceKind,
    StemhubError,
    StemSet,
)

log = logging.getLogger(__name__)

STEM_CHOICES: list[tuple[str, str]] = [
    ("Vocals + instrumental", StemSet.BOTH.value),
    ("4 stems: vocals, drums, bass, other", StemSet.FOUR_STEMS.value),
    ("6 stems: + guitar, piano", StemSet.SIX_STEMS.value),
    ("Vocals only", StemSet.VOCALS.value),
    ("Instrumental only", StemSet.INSTRUMENTAL.value),
    ("Drums only", "drums"),
    ("Bass only", "bass"),
    ("Guitar only", "guitar"),
    ("Piano only", "piano"),
    ("Other only", "other"),
]
"""(label, value) of the stems option; a value is a StemSet name or one stem."""

AGAIN_OPTIONS: tuple[tuple[str, str], ...] = (
    ("Vocals + instrumental", StemSet.BOTH.value),
    ("4 stems", StemSet.FOUR_STEMS.value),
    ("6 stems", StemSet.SIX_STEMS.value),
    ("Vocals only", StemSet.VOCALS.value),
    ("Instrumental only", StemSet.INSTRUMENTAL.value),
)
"""The "Split again as ..." choices of a result; it offers those its backend can do."""

_PROBE = Source(kind=SourceKind.URL, url="https://discord.invalid/")
"""The source of a request that asks only which backend would take it."""


def parse_stems(value: str) -> StemSet | list[str]:
    """A choice's value as the hub takes it; an unknown value is refused, not guessed."""
    if value.upper() in StemSet.__members__:
        return StemSet(value.upper())
    if value.lower() in ALL_STEMS:
        return [value.lower()]
    raise RequestRejected(
        ErrorCode.INVALID_REQUEST, f"I do not know the stems {value[:40]!r}; pick a choice."
    )


def stems_label(stems: StemSet | list[str]) -> str:
    value = stems.value if isinstance(stems, StemSet) else ",".join(stems)
    for label, choice in STEM_CHOICES:
        if choice == value:
            return label
    return ", ".join(stems.stems if isinstance(stems, StemSet) else stems)


def backend_can_split(hub: PluginHub, request: JobRequest) -> bool:
    """Whether the backend the hub would pick for ``request`` splits into its stems."""
    name, _why = hub.choose_backend(request)
    return request.stem_set in hub.capabilities(name).stem_sets


def offered(
    hub: PluginHub,
    choices: Iterable[tuple[str, str]],
    *,
    output_format: OutputFormat,
    source: Source = _PROBE,
) -> list[tuple[str, str]]:
    """The choices the hub's backend can do, in their order."""
    return [
        (label, value)
        for label, value in choices
        if backend_can_split(
            hub,
            JobRequest(source=source, stems=parse_stems(value), output_format=output_format),
        )
    ]


def again_choices(hub: PluginHub, job: Job) -> list[tuple[str, str]]:
    """What a result may be split again into (the same song and format); none when the
    hub cannot say (no backend ready on this hub): the select is then left out."""
    try:
        return offered(
            hub,
            AGAIN_OPTIONS,
            output_format=job.request.output_format,
            source=job.request.source,
        )
    except StemhubError as error:
        log.info("no split-again choices for job %s: %s", job.id, error.code.value)
        return []


def check_stems(hub: PluginHub, request: JobRequest) -> None:
    """Refuse, naming what can be had instead, stems the backend cannot split into."""
    if backend_can_split(hub, request):
        return
    possible = offered(
        hub, STEM_CHOICES, output_format=request.output_format, source=request.source
    )
    wanted = stems_label(request.stems)
    names = ", ".join(label for label, _value in possible) or "nothing in this format"
    raise RequestRejected(
        ErrorCode.UNSUPPORTED_STEM_SET,
        f"This bot cannot split into {wanted}; it can do: {names}.",
    )


__all__ = [
    "AGAIN_OPTIONS",
    "STEM_CHOICES",
    "again_choices",
    "backend_can_split",
    "check_stems",
    "offered",
    "parse_stems",
    "stems_label",
]

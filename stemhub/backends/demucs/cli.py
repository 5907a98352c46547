"""``stemhub models``: pull HT-Demucs weights and see which ones this machine has.

Added to the ``stemhub`` command by the demucs plugin's ``stemhub_register_commands``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from stemhub.backends.demucs import (
    DemucsSettings,
    check_readiness,
    pulled_dir,
    search_folders,
)
from stemhub.backends.demucs.pull import default_endpoint, pull_model
from stemhub.backends.demucs.weights import KNOWN_MODELS, WeightsError, locate
from stemhub.config import Settings
from stemhub.errors import ErrorCode, StemhubError

models_app = typer.Typer(
    help="HT-Demucs weights for the demucs backend: pull them, list what is here.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_FAILED, EXIT_USAGE = 1, 2


def _same_folder(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


@models_app.command("pull")
def pull(
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="htdemucs, htdemucs_ft, htdemucs_6s, ..."),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Folder to fill (default: STEMHUB_DEMUCS_REPO or the data dir)"),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="Hugging Face hub or a mirror (default: HF_ENDPOINT or huggingface.co)"),
    ] = None,
) -> None:
    """Download a model's weights (needs internet; says what to do without it)."""
    settings, demucs = Settings(), DemucsSettings()
    name = name or demucs.model
    folder = (to or demucs.repo or pulled_dir(settings)).expanduser()
    source = (endpoint or default_endpoint()).rstrip("/")
    console.print(escape(f"Pulling {name} from {source} into {folder}"))

    def started(filename: str, size: int | None) -> None:
        amount = f" ({size / 1e6:.1f} MB)" if size is not None else ""
        console.print(escape(f"  downloading {filename}{amount}"))

    try:
        pulled = asyncio.run(pull_model(name, folder, endpoint=source, started=started))
    except StemhubError as error:
        err_console.print(f"[red]error[/red] {error.code.value}: {escape(error.message)}")
        usage = error.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST)
        code = EXIT_USAGE if usage else EXIT_FAILED
        raise typer.Exit(code) from None
    console.print(
        escape(
            f"{name} is ready in {folder} ({len(pulled.downloaded)} downloaded, "
            f"{len(pulled.kept)} already there)."
        )
    )
    if not any(_same_folder(folder, path) for path, _ in search_folders(settings, demucs)):
        console.print(escape(f"Set STEMHUB_DEMUCS_REPO={folder} so the demucs backend finds it."))
    if name != demucs.model:
        console.print(
            escape(f"Set STEMHUB_DEMUCS_MODEL={name} to use it instead of {demucs.model}.")
        )
    readiness = check_readiness(settings, demucs.model_copy(update={"repo": folder, "model": name}))
    if readiness.files is None and readiness.advice:
        console.print(escape(readiness.advice))


@models_app.command("list")
def list_models() -> None:
    """Which demucs models have weights on this machine, and where."""
    settings, demucs = Settings(), DemucsSettings()
    folders = search_folders(settings, demucs)
    for name in dict.fromkeys([demucs.model, *KNOWN_MODELS]):
        try:
            files = locate(name, folders)
            where = files.describe() if files is not None else "not on this machine"
        except WeightsError as exc:
            where = f"damaged: {exc}"
        marker = " (configured)" if name == demucs.model else ""
        console.print(escape(f"{name}{marker}: {where}"))
    readiness = check_readiness(settings, demucs)
    if readiness.files is None:
        console.print(f"The demucs backend is not available: {escape(readiness.advice or '')}")
        if readiness.detail:
            console.print(escape(f"({readiness.detail})"))
    else:
        console.print(escape(f"The demucs backend uses {readiness.files.describe()}."))


__all__ = ["models_app"]

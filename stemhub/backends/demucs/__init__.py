"""HT-Demucs as a stemhub backend (builtin plugin ``demucs``, extra ``stemhub[demucs]``).

For people with a GPU, or the patience to run a large model on a CPU: the separation
quality of the published HT-Demucs models, behind the same backend protocol as the
built-in engine. This module imports without torch; the hub only asks whether the
backend is ``available`` (torch and demucs installed, weights on disk), which
:mod:`stemhub.backends.demucs.weights` answers by looking at files. When it is not,
``describe()`` and every attempt to use it say what to install or where weights go.

The model runs in one worker process (:mod:`stemhub.backends.demucs.worker`) that keeps
it loaded between jobs; jobs take turns on it, since one model already fills a GPU or
every CPU core. Cancelling a job ends the worker at once; the next job starts a new one.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stemhub.backends.base import (
    Backend,
    ProgressCallback,
    SeparationResult,
    SeparationTask,
    StemFile,
)
from stemhub.backends.demucs.weights import (
    DEFAULT_MODEL,
    INSTALL_HINT,
    ModelFiles,
    WeightsError,
    locate,
    missing_packages,
)
from stemhub.backends.demucs.worker import (
    Progress,
    WorkDone,
    WorkFailed,
    WorkOrder,
    serve,
)
from stemhub.config import PluginSettings, Settings
from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import BackendCapabilities, StemSet
from stemhub.plugin.spec import RegisterBackend, RegisterCommand, hookimpl

if TYPE_CHECKING:
    from stemhub.hub import Hub

BASE_STEM_SETS = frozenset({StemSet.VOCALS, StemSet.INSTRUMENTAL, StemSet.BOTH, StemSet.FOUR_STEMS})
STOP_GRACE_S = 5.0


class DemucsSettings(PluginSettings):
    """``STEMHUB_DEMUCS_*`` variables, or the ``[demucs]`` table of stemhub.toml."""

    model_config = SettingsConfigDict(env_prefix="STEMHUB_DEMUCS_", env_file=".env", extra="ignore")
    toml_section: ClassVar[str | None] = "demucs"

    repo: Path | None = None
    """A folder of weights in demucs' layout, searched before anything else."""
    model: str = DEFAULT_MODEL
    """``htdemucs`` (4 stems), ``htdemucs_ft`` (4, slower, better), ``htdemucs_6s`` (6)."""
    device: str = "auto"
    """``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    threads: int | None = Field(default=None, ge=1)
    """CPU threads for torch (default: one per core); fewer leaves room for other work."""


def pulled_dir(settings: Settings) -> Path:
    """Where ``stemhub models pull`` puts weights by default (searched after ``repo``)."""
    return settings.data_dir / "models" / "demucs"


def search_folders(settings: Settings, demucs: DemucsSettings) -> list[tuple[Path, str]]:
    folders: list[tuple[Path, str]] = []
    if demucs.repo is not None:
        folders.append((demucs.repo.expanduser(), "STEMHUB_DEMUCS_REPO"))
    folders.append((pulled_dir(settings), "the stemhub model folder"))
    return folders


@dataclass(frozen=True)
class Readiness:
    """Whether the backend can run, and if not, the one thing to do about it."""

    files: ModelFiles | None
    advice: str | None = None
    """What to do, for whoever typed the command (no server paths)."""
    detail: str | None = None
    """For the operator: where weights were looked for, or what is wrong with them."""


def check_readiness(settings: Settings, demucs: DemucsSettings) -> Readiness:
    missing = missing_packages()
    if missing:
        return Readiness(None, f"HT-Demucs needs {' and '.join(missing)}: {INSTALL_HINT}.")
    name = demucs.model
    folders = search_folders(settings, demucs)
    try:
        files = locate(name, folders)
    except WeightsError as exc:
        return Readiness(
            None,
            f"The {name} weights are damaged; run `stemhub models pull --name {name}`.",
            str(exc),
        )
    if files is None:
        searched = ", ".join(str(folder) for folder, _ in folders)
        return Readiness(
            None,
            f"No weights for the HT-Demucs model {name} were found. Run `stemhub models pull "
            f"--name {name}` where the internet is reachable, or put the model files in a "
            f"folder and set STEMHUB_DEMUCS_REPO to it.",
            f"searched {searched}, the Hugging Face cache, the torch hub cache",
        )
    return Readiness(files)


def _stem_sets(model_name: str, sources: tuple[str, ...] | None) -> frozenset[StemSet]:
    six = {"guitar", "piano"} <= set(sources) if sources is not None else "6s" in model_name
    return BASE_STEM_SETS | {StemSet.SIX_STEMS} if six else BASE_STEM_SETS


class _Worker:
    """The worker process and the parent's end of its pipe."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child,), name="stemhub-demucs", daemon=True
        )
        self.process.start()
        child.close()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def send(self, order: WorkOrder) -> None:
        self._conn.send(order)

    def _receive(self) -> object:
        try:
            message: object = self._conn.recv()
        except OSError as exc:
            raise EOFError(str(exc)) from exc
        return message

    async def receive(self) -> object:
        """The next message; EOFError when the worker is gone."""
        return await asyncio.to_thread(self._receive)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(STOP_GRACE_S)
        self._conn.close()

    def stop(self) -> None:
        """Let the worker finish its loop (pipe closed), then make sure it is gone."""
        self._conn.close()
        self.process.join(STOP_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_GRACE_S)


class DemucsBackend(Backend):
    name = "demucs"

    def __init__(self, settings: Settings, demucs: DemucsSettings | None = None) -> None:
        self.settings = settings
        self.demucs = demucs or DemucsSettings()
        self.capabilities = BackendCapabilities(
            stem_sets=_stem_sets(self.demucs.model, None),
            analysis=True,
            resumable=False,
            concurrency=1,
        )
        self._worker: _Worker | None = None
        self._turn = asyncio.Lock()
        self._orders: dict[str, WorkOrder] = {}
        self._cancelled: set[str] = set()
        self._running: str | None = None
        self._device: str | None = None

    def readiness(self) -> Readiness:
        """Looked up on every call (cheap file checks), so weights pulled later count."""
        return check_readiness(self.settings, self.demucs)

    @property
    def available(self) -> bool:
        """torch and demucs are installed and the model's weights are on disk."""
        return self.readiness().files is not None

    async def start(self, task: SeparationTask) -> str:
        readiness = self.readiness()
        if readiness.files is None:
            raise StemhubError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"The demucs backend cannot run here. {readiness.advice}",
                operator_message=readiness.detail,
            )
        if task.input_path is None:
            raise StemhubError(
                ErrorCode.UNSUPPORTED_SOURCE,
                "The demucs backend separates audio files; send the file or a direct link.",
            )
        if task.stem_set not in self.capabilities.stem_sets:
            raise StemhubError(
                ErrorCode.UNSUPPORTED_STEM_SET,
                f"The {self.demucs.model} model cannot split into {task.stem_set.value}. "
                "Six stems need STEMHUB_DEMUCS_MODEL=htdemucs_6s.",
            )
        remote_id = f"demucs-{uuid.uuid4().hex[:16]}"
        self._orders[remote_id] = WorkOrder(
            input_path=task.input_path,
            out_dir=task.out_dir,
            stem_set=task.stem_set,
            stems=task.stems,
            output_format=task.output_format,
            quality=task.quality,
            model=readiness.files,
            device=self.demucs.device,
            threads=self.demucs.threads,
        )
        return remote_id

    async def wait(
        self, task: SeparationTask, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        order = self._orders.get(remote_id)
        if order is None:
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The separation was lost (the hub restarted); it will start again.",
                retryable=True,
            )
        try:
            async with self._turn:
                self._check_cancelled(remote_id)
                self._running = remote_id
                return await self._run(order, remote_id, progress)
        finally:
            if self._running == remote_id:
                self._running = None
            self._orders.pop(remote_id, None)
            self._cancelled.discard(remote_id)

    def _check_cancelled(self, remote_id: str) -> None:
        if remote_id in self._cancelled:
            raise StemhubError(ErrorCode.JOB_CANCELLED, "The job was cancelled.")

    async def _run(
        self, order: WorkOrder, remote_id: str, progress: ProgressCallback
    ) -> SeparationResult:
        if self._worker is None or not self._worker.alive:
            self._worker = await asyncio.to_thread(_Worker)
        worker = self._worker
        try:
            worker.send(order)
            while True:
                message = await worker.receive()
                if isinstance(message, Progress):
                    await progress(message.percent, message.message)
                elif isinstance(message, WorkFailed):
                    raise message.to_error()
                elif isinstance(message, WorkDone):
                    return self._result(message)
        except EOFError:
            exit_code = worker.process.exitcode
            self._discard_worker()
            self._check_cancelled(remote_id)
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The HT-Demucs worker stopped before finishing (out of memory?).",
                operator_message=f"worker exit code {exit_code}",
            ) from None
        except asyncio.CancelledError:
            self._discard_worker()
            raise

    def _result(self, done: WorkDone) -> SeparationResult:
        self._device = done.device
        self.capabilities = self.capabilities.model_copy(
            update={"stem_sets": _stem_sets(self.demucs.model, done.sources)}
        )
        stems = {
            item.stem: StemFile(
                stem=item.stem,
                path=item.path,
                size_bytes=item.size_bytes,
                duration_s=item.duration_s,
            )
            for item in done.stems
        }
        return SeparationResult(
            stems=stems,
            bpm=done.bpm,
            key=done.key,
            raw={"device": done.device, "sources": list(done.sources)},
        )

    def _discard_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()

    async def cancel(self, remote_id: str) -> None:
        """Ends the worker when it is on this job; a job still waiting never starts."""
        self._cancelled.add(remote_id)
        if self._running == remote_id:
            self._discard_worker()

    async def describe(self) -> dict[str, Any]:
        readiness = self.readiness()
        device = self._device or self.demucs.device
        if device == "auto":
            device = "auto (CUDA when present, else CPU)"
        facts: dict[str, Any] = {"model": self.demucs.model, "device": device}
        if readiness.files is None:
            facts["available"] = False
            facts["todo"] = readiness.advice
            if readiness.detail:
                facts["detail"] = readiness.detail
        else:
            facts["weights"] = readiness.files.describe()
        return facts

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.stop)


def make_backend(hub: Hub) -> DemucsBackend:
    return DemucsBackend(hub.settings)


@hookimpl
def stemhub_register_backends(register: RegisterBackend) -> None:
    register("demucs", make_backend, priority=20, ready=_weights_found)


def _weights_found(hub: Hub) -> str | None:
    backend = hub.backend("demucs")
    return (
        "HT-Demucs weights found"
        if isinstance(backend, DemucsBackend) and backend.available
        else None
    )


@hookimpl
def stemhub_register_commands(register: RegisterCommand) -> None:
    register(
        "models",
        "stemhub.backends.demucs.cli:models_app",
        help="HT-Demucs weights for the demucs backend: pull them, list what is here.",
    )


__all__ = [
    "DemucsBackend",
    "DemucsSettings",
    "Readiness",
    "check_readiness",
    "pulled_dir",
    "search_folders",
]

"""The HT-Demucs backend from outside: jobs through a hub, ``stemhub models``, no downloads.

Tests that separate build a tiny random-weight HTDemucs (8 kHz, a few thousand
parameters) and save it in demucs' own repo layouts in a temp folder: a bag yaml with
a checksum-named ``.th`` package (``demucs.states``), or the Hugging Face export
(``.yaml`` + ``.safetensors``) served by a loopback mirror for ``models pull``. Those
tests skip when torch and demucs are not installed (the ``stemhub[demucs]`` extra).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import typer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from stemhub import hookimpl, media
from stemhub.backends.demucs import DemucsBackend
from stemhub.cli import app as stemhub_app
from stemhub.errors import ErrorCode, RequestRejected
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, JobStatus, OutputFormat, Quality, Source, StemSet
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import make_settings, patience, write_test_tone

from ._servers import RunningServer, serve

FOUR_SOURCES = ("drums", "bass", "other", "vocals")
SIX_SOURCES = ("drums", "bass", "other", "vocals", "guitar", "piano")
TINY = {
    "channels": 4,
    "depth": 3,
    "nfft": 512,
    "t_layers": 1,
    "t_heads": 2,
    "t_hidden_scale": 1.0,
    "dconv_comp": 2,
    "segment": 2,
    "samplerate": 8000,
}


class ProgressLog:
    def __init__(self) -> None:
        self.values: list[float] = []

    @hookimpl
    def stemhub_job_progress(self, job: Job) -> None:
        self.values.append(job.progress)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean machine: empty caches, no demucs settings but the ones a test sets."""
    monkeypatch.chdir(tmp_path)
    for name in ("STEMHUB_DEMUCS_REPO", "STEMHUB_DEMUCS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEMHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("STEMHUB_DEMUCS_DEVICE", "cpu")
    monkeypatch.setenv("STEMHUB_DEMUCS_THREADS", "1")
    return tmp_path


NEEDS_EXTRA = "separating needs the stemhub[demucs] extra (torch and demucs), not installed"


def tiny_model(sources: tuple[str, ...], seed: int = 0) -> Any:
    torch = pytest.importorskip("torch", reason=NEEDS_EXTRA)
    htdemucs = pytest.importorskip("demucs.htdemucs", reason=NEEDS_EXTRA)
    torch.manual_seed(seed)
    return htdemucs.HTDemucs(list(sources), **TINY).eval()


def save_repo(folder: Path, name: str, model: Any) -> None:
    """demucs' local repo layout: ``{name}.yaml`` naming ``{sig}-{checksum}.th``."""
    states = pytest.importorskip("demucs.states", reason=NEEDS_EXTRA)
    folder.mkdir(parents=True, exist_ok=True)
    args, kwargs = model._init_args_kwargs
    package = {"klass": type(model), "args": args, "kwargs": kwargs, "state": model.state_dict()}
    states.save_with_checksum(package, folder / "5eed0001.th")
    (folder / f"{name}.yaml").write_text("models: ['5eed0001']\n")


def hf_export(model: Any, sig: str) -> dict[str, bytes]:
    """The Hugging Face export of one model: the bag yaml and ``{sig}.safetensors``."""
    safetensors_torch = pytest.importorskip("safetensors.torch", reason=NEEDS_EXTRA)
    args, kwargs = model._init_args_kwargs
    metadata = {
        "klass": f"{type(model).__module__}.{type(model).__name__}",
        "args": json.dumps(args),
        "kwargs": json.dumps(kwargs),
    }
    state = {key: value.contiguous().clone() for key, value in model.state_dict().items()}
    return {
        f"{sig}.safetensors": safetensors_torch.save(state, metadata=metadata),
    }


def mirror_app(repo_id: str, files: dict[str, bytes], digests: dict[str, str]) -> Starlette:
    """A Hugging Face-like mirror: ``resolve`` redirects weights to a CDN path, as the hub does."""

    async def resolve(request: Request) -> Response:
        repo = f"{request.path_params['ns']}/{request.path_params['repo']}"
        filename = request.path_params["filename"]
        if repo != repo_id or filename not in files:
            return Response("Repository not found", status_code=404)
        if filename.endswith(".safetensors"):
            digest = digests.get(filename) or hashlib.sha256(files[filename]).hexdigest()
            headers = {"X-Linked-Etag": f'"{digest}"'}
            return RedirectResponse(f"/cdn/{filename}", status_code=302, headers=headers)
        return Response(files[filename])

    async def cdn(request: Request) -> Response:
        return Response(files[request.path_params["filename"]])

    return Starlette(
        routes=[
            Route("/{ns}/{repo}/resolve/main/{filename}", resolve),
            Route("/cdn/{filename}", cdn),
        ]
    )


@pytest.fixture
def mirror_files() -> dict[str, bytes]:
    return {}


@pytest.fixture
def mirror_digests() -> dict[str, str]:
    """sha256 the mirror states for a file, when a test wants it to lie."""
    return {}


@pytest.fixture
def mirror(
    mirror_files: dict[str, bytes], mirror_digests: dict[str, str]
) -> Iterator[RunningServer]:
    with serve(mirror_app("adefossez/HTDemucs-6s", mirror_files, mirror_digests)) as server:
        yield server


def models_cli() -> typer.Typer:
    """The ``stemhub`` command, whose ``models`` group the demucs plugin registers."""
    return stemhub_app


def open_hub(machine: Path, *plugins: tuple[str, object]) -> Hub:
    settings = make_settings(machine / "data")
    return Hub(settings, pm=get_plugin_manager(only=(), extra=plugins), recover=False)


def file_request(path: Path, stems: StemSet, **kwargs: Any) -> JobRequest:
    source = Source(kind="file", path=str(path), filename=path.name)
    return JobRequest(source=source, stems=stems, quality=Quality.FAST, **kwargs)


async def finished(hub: Hub, request: JobRequest, limit_s: float = 120) -> Job:
    job = await hub.submit(request)
    return await hub.wait_for(job.id, timeout=limit_s)


def stem_audio(hub: Hub, job: Job) -> dict[str, tuple[np.ndarray, int]]:
    out: dict[str, tuple[np.ndarray, int]] = {}
    for stem, output in job.outputs.items():
        path = hub.outputs.path_of(job, output)
        assert path is not None and path.is_file()
        out[stem] = media.decode(path)
    return out


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_without_weights_it_is_unavailable_and_says_what_to_do(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMHUB_DEMUCS_REPO", str(machine / "empty-repo"))
    song = write_test_tone(machine / "song.wav")
    async with open_hub(machine) as hub:
        backend = hub.backend("demucs")
        assert isinstance(backend, DemucsBackend) and backend.available is False
        facts = await backend.describe()
        assert facts["available"] is False
        assert "stemhub models pull" in facts["todo"] or "stemhub[demucs]" in facts["todo"]

        name, _why = hub.choose_backend(file_request(song, StemSet.BOTH))
        assert name != "demucs"

        job = await finished(hub, file_request(song, StemSet.BOTH, backend="demucs"), 30)
    assert job.status is JobStatus.FAILED
    assert job.error_code == ErrorCode.BACKEND_UNAVAILABLE.value
    assert "STEMHUB_DEMUCS_REPO" in (job.error_message or "") or "stemhub[demucs]" in (
        job.error_message or ""
    )


async def test_six_stems_are_refused_up_front_by_a_four_source_model(machine: Path) -> None:
    song = write_test_tone(machine / "song.wav")
    async with open_hub(machine) as hub:
        assert StemSet.SIX_STEMS not in hub.backend("demucs").capabilities.stem_sets
        with pytest.raises(RequestRejected) as refused:
            await hub.submit(file_request(song, StemSet.SIX_STEMS, backend="demucs"))
    assert refused.value.code is ErrorCode.UNSUPPORTED_STEM_SET


def test_models_pull_without_network_fails_fast_with_offline_advice(machine: Path) -> None:
    pytest.importorskip("yaml", reason="pulling reads yaml (PyYAML)")
    result = CliRunner().invoke(
        models_cli(), ["models", "pull", "--endpoint", f"http://127.0.0.1:{closed_port()}"]
    )
    assert result.exit_code == 1, result.output
    assert "SOURCE_UNREACHABLE" in result.output
    assert "--to DIR" in result.output and "STEMHUB_DEMUCS_REPO" in result.output
    assert not list((machine / "data" / "models" / "demucs").glob("*.yaml"))


def test_models_pull_of_an_unknown_name_says_which_names_exist(
    machine: Path, mirror: RunningServer
) -> None:
    pytest.importorskip("yaml", reason="pulling reads yaml (PyYAML)")
    result = CliRunner().invoke(
        models_cli(), ["models", "pull", "--name", "htdemucs_6s", "--endpoint", mirror.url]
    )
    assert result.exit_code == 2, result.output
    assert "NOT_FOUND" in result.output and "htdemucs_ft" in result.output


def mono_mp3(path: Path, rate: int, seconds: float) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * 330 * t) * np.sin(2 * np.pi * 2 * t)
    media.encode(path, tone.astype(np.float32)[None, :], rate, OutputFormat.MP3)
    return path


def test_models_pull_keeps_nothing_of_a_damaged_download(
    machine: Path,
    mirror: RunningServer,
    mirror_files: dict[str, bytes],
    mirror_digests: dict[str, str],
) -> None:
    pytest.importorskip("yaml", reason="pulling reads yaml (PyYAML)")
    mirror_files["htdemucs_6s.yaml"] = b"models: ['0badf11e']\n"
    mirror_files["0badf11e.safetensors"] = b"weights, cut short"
    mirror_digests["0badf11e.safetensors"] = "0" * 64
    folder = machine / "pulled"
    result = CliRunner().invoke(
        models_cli(),
        ["models", "pull", "--name", "htdemucs_6s", "--to", str(folder), "--endpoint", mirror.url],
    )
    assert result.exit_code == 1, result.output
    assert "damaged" in result.output
    assert list(folder.iterdir()) == []


def test_models_list_finds_weights_earlier_demucs_runs_left_in_the_caches(machine: Path) -> None:
    pytest.importorskip("yaml", reason="bag descriptions are yaml (PyYAML)")
    snapshot = machine / "hf-cache" / "models--adefossez--HTDemucs" / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("c0ffee")
    (snapshot / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    (snapshot / "955717e8.safetensors").write_bytes(b"weights")
    checkpoints = machine / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "5c90dfd2-34c22ccb.th").write_bytes(b"weights")

    listed = CliRunner().invoke(models_cli(), ["models", "list"])
    assert listed.exit_code == 0, listed.output
    lines = dict(line.split(": ", 1) for line in listed.output.splitlines() if ": " in line)
    assert "the Hugging Face cache" in lines["htdemucs (configured)"]
    if importlib.util.find_spec("demucs") is not None:
        assert "the torch hub cache" in lines["htdemucs_6s"]
    assert lines["htdemucs_ft"] == "not on this machine"


async def test_stems_keep_rate_length_and_channels_and_both_agrees_with_four_stems(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_repo(machine / "repo", "htdemucs", tiny_model(FOUR_SOURCES))
    monkeypatch.setenv("STEMHUB_DEMUCS_REPO", str(machine / "repo"))
    song = write_test_tone(machine / "song.wav", seconds=4.0)
    voice = mono_mp3(machine / "voice.mp3", 22050, 1.5)
    progress = ProgressLog()
    async with open_hub(machine, ("progress-log", progress)) as hub:
        assert hub.choose_backend(file_request(song, StemSet.FOUR_STEMS)) == (
            "demucs",
            "HT-Demucs weights found",
        )
        four = await finished(hub, file_request(song, StemSet.FOUR_STEMS))
        assert four.status is JobStatus.COMPLETED, four.error_message
        four_progress = list(progress.values)
        both = await finished(hub, file_request(song, StemSet.BOTH))
        assert both.status is JobStatus.COMPLETED, both.error_message
        flac = file_request(voice, StemSet.VOCALS, output_format=OutputFormat.FLAC)
        mono = await finished(hub, flac)
        assert mono.status is JobStatus.COMPLETED, mono.error_message
        facts = await hub.backend("demucs").describe()
        four_audio, both_audio = stem_audio(hub, four), stem_audio(hub, both)
        mono_audio = stem_audio(hub, mono)

    assert sorted(four_audio) == ["bass", "drums", "other", "vocals"]
    assert sorted(both_audio) == ["instrumental", "vocals"]
    mix, rate = media.decode(song)
    for audio, stem_rate in [*four_audio.values(), *both_audio.values()]:
        assert stem_rate == rate and audio.shape == mix.shape
        assert np.abs(audio).max() > 1e-3
    drums, bass, other = (four_audio[s][0] for s in ("drums", "bass", "other"))
    assert not np.allclose(drums, bass, atol=1e-3)
    tolerance = 4 / 32768
    np.testing.assert_allclose(both_audio["vocals"][0], four_audio["vocals"][0], atol=tolerance)
    np.testing.assert_allclose(both_audio["instrumental"][0], drums + bass + other, atol=tolerance)

    assert list(mono_audio) == ["vocals"]
    vocals, vocals_rate = mono_audio["vocals"]
    assert vocals_rate == 22050 and vocals.shape == media.decode(voice)[0].shape
    assert str(mono.outputs["vocals"].path).endswith("vocals.flac")

    assert any(10 < value < 92 for value in four_progress), four_progress
    assert four.audio is not None and four.audio.key is not None
    assert four_progress == sorted(four_progress)
    assert "cpu" in facts["device"] and "STEMHUB_DEMUCS_REPO" in str(facts["weights"])


def test_pull_from_a_mirror_then_split_into_six_stems(
    machine: Path,
    monkeypatch: pytest.MonkeyPatch,
    mirror: RunningServer,
    mirror_files: dict[str, bytes],
) -> None:
    mirror_files.update(hf_export(tiny_model(SIX_SOURCES), "6e6e6e6e"))
    mirror_files["htdemucs_6s.yaml"] = b"models: ['6e6e6e6e']\nsegment: 2\n"
    folder = machine / "pulled"
    result = CliRunner().invoke(
        models_cli(),
        ["models", "pull", "--name", "htdemucs_6s", "--to", str(folder), "--endpoint", mirror.url],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["6e6e6e6e.safetensors", "htdemucs_6s.yaml"]
    assert "STEMHUB_DEMUCS_REPO" in result.output and "STEMHUB_DEMUCS_MODEL" in result.output

    monkeypatch.setenv("STEMHUB_DEMUCS_REPO", str(folder))
    monkeypatch.setenv("STEMHUB_DEMUCS_MODEL", "htdemucs_6s")
    listed = CliRunner().invoke(models_cli(), ["models", "list"])
    assert listed.exit_code == 0 and "uses htdemucs_6s" in listed.output

    song = write_test_tone(machine / "song.wav", seconds=1.0)

    async def split() -> tuple[Job, list[str], frozenset[StemSet]]:
        async with open_hub(machine) as hub:
            stem_sets = hub.backend("demucs").capabilities.stem_sets
            job = await finished(hub, file_request(song, StemSet.SIX_STEMS))
            return job, sorted(stem_audio(hub, job)), stem_sets

    job, stems, stem_sets = asyncio.run(split())
    assert StemSet.SIX_STEMS in stem_sets
    assert job.status is JobStatus.COMPLETED, job.error_message
    assert job.backend == "demucs"
    assert stems == sorted(StemSet.SIX_STEMS.stems)


@pytest.mark.slow
async def test_cancel_stops_a_running_separation_and_the_next_job_still_runs(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_repo(machine / "repo", "htdemucs", tiny_model(FOUR_SOURCES))
    monkeypatch.setenv("STEMHUB_DEMUCS_REPO", str(machine / "repo"))
    long_song = write_test_tone(machine / "long.wav", seconds=30.0)
    short_song = write_test_tone(machine / "short.wav", seconds=1.0)
    async with open_hub(machine) as hub:
        job = await hub.submit(file_request(long_song, StemSet.FOUR_STEMS))
        async with asyncio.timeout(patience(120)):
            async for snapshot in hub.watch(job.id, poll_s=0.05):
                if snapshot.progress > 10:
                    break
        workers = [
            child
            for child in psutil.Process().children()
            if any("spawn_main" in part for part in child.cmdline())
        ]
        assert workers, "the separation runs in a worker process"
        cancelled = await hub.cancel(job.id)
        assert cancelled.status is JobStatus.CANCELLED
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
        assert not any(hub.outputs.job_dir(job.id).glob("*.wav"))

        after = await finished(hub, file_request(short_song, StemSet.VOCALS))
        assert after.status is JobStatus.COMPLETED, after.error_message

"""The README's example plugin, registered into a real hub and run end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from stemhub.errors import ErrorCode, RequestRejected
from stemhub.hub import Hub
from stemhub.models import JobRequest, Source, SourceKind
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import FakeBackendControls, FakeBackendPlugin, make_settings, patience

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "stemhub_jsonl" / "stemhub_jsonl.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stemhub_jsonl", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_shows_the_example_verbatim() -> None:
    assert EXAMPLE.read_text().strip() in (ROOT / "README.md").read_text()


async def test_example_plugin_logs_deliveries_and_refuses_big_files(
    tmp_path: Path, stemhub_audio_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "jobs.jsonl"
    monkeypatch.setenv("STEMHUB_JSONL_PATH", str(log))
    example = load_example()
    pm = get_plugin_manager(
        only=(), extra=[("fake", FakeBackendPlugin(FakeBackendControls())), ("jsonl", example)]
    )
    settings = make_settings(tmp_path / "data", default_backend="fake")
    async with Hub(settings, pm=pm) as hub:
        source = Source(kind=SourceKind.FILE, path=str(stemhub_audio_file))
        job = await hub.submit(JobRequest(source=source, stems=["vocals"]))
        await hub.wait_for(job.id, timeout=patience(10))
        too_big = source.model_copy(update={"size_bytes": 60_000_000})
        with pytest.raises(RequestRejected) as caught:
            await hub.submit(JobRequest(source=too_big))
    assert caught.value.code is ErrorCode.FILE_TOO_LARGE
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [{"id": job.id, "status": "COMPLETED", "stems": ["vocals"]}]

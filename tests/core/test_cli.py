"""The stemhub command as a shell user meets it: real files in, stems and tables out."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemhub.cli import app
from stemhub.testing import write_test_tone


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEMHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STEMSPLIT_API_KEY", raising=False)
    monkeypatch.delenv("STEMHUB_STEMSPLIT_API_KEY", raising=False)
    return CliRunner()


def test_split_writes_stems_and_prints_a_summary(shell: CliRunner, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "song.wav", seconds=2.0)
    result = shell.invoke(app, ["split", str(song), "-o", "out", "--stems", "BOTH"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out" / "song").iterdir())
    assert written == ["instrumental.wav", "vocals.wav"]
    assert "local: the built-in engine needs no key" in result.output
    assert "BPM" in result.output and "key" in result.output

    listed = shell.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and "COMPLETED" in listed.output and "song.wav" in listed.output


def test_missing_file_is_a_usage_error(shell: CliRunner) -> None:
    result = shell.invoke(app, ["split", "nope.mp3"])
    assert result.exit_code == 2
    assert "NOT_FOUND" in result.output and "nope.mp3" in result.output


def test_unknown_stem_name_is_a_usage_error(shell: CliRunner, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    result = shell.invoke(app, ["split", str(song), "--stems", "vocals,kazoo"])
    assert result.exit_code == 2 and "kazoo" in result.output


def test_six_stems_on_the_local_engine_says_where_to_go(shell: CliRunner, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    result = shell.invoke(app, ["split", str(song), "--stems", "SIX_STEMS"])
    assert result.exit_code == 2
    assert "UNSUPPORTED_STEM_SET" in result.output and "STEMSPLIT_API_KEY" in result.output


def test_not_audio_fails_with_a_stable_code(shell: CliRunner, tmp_path: Path) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    result = shell.invoke(app, ["split", str(fake)])
    assert result.exit_code == 2 and "UNSUPPORTED_FORMAT" in result.output


def test_plugins_lists_builtins_with_hooks(shell: CliRunner) -> None:
    result = shell.invoke(app, ["plugins"])
    assert result.exit_code == 0
    assert "local" in result.output and "builtin" in result.output
    assert "check_quota" in result.output


def test_doctor_reports_store_and_codecs(shell: CliRunner) -> None:
    result = shell.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "sqlite, schema 000" in result.output
    assert "PyAV" in result.output


def test_jobs_show_unknown_id(shell: CliRunner) -> None:
    result = shell.invoke(app, ["jobs", "show", "deadbeef"])
    assert result.exit_code == 2 and "NOT_FOUND" in result.output

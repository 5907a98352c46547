"""One error style: ``error CODE: message`` on one line of stderr, whatever went wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemhub import __version__
from stemhub.cli import app
from stemhub.testing import write_test_tone

from .conftest import Shell


def test_an_unknown_stem_set_is_one_plain_line(shell: Shell, home: Path) -> None:
    song = write_test_tone(home / "song.wav")

    result = shell("split", str(song), "--stems", "BANANA")

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # one line although longer than COLUMNS=80
    assert lines[0].startswith("error INVALID_REQUEST: --stems banana is not a stem set")
    assert "pydantic" not in result.stderr and "FOUR_STEMS" in lines[0]


def test_a_stem_the_backend_lacks_names_the_stem_and_the_backend(
    cli: CliRunner, home: Path
) -> None:
    song = write_test_tone(home / "song.wav")

    result = cli.invoke(app, ["split", str(song), "--stems", "guitar"])

    assert result.exit_code == 2
    assert "The local backend cannot make the guitar stem" in result.stderr
    assert "STEMSPLIT_API_KEY" in result.stderr
    assert "SIX_STEMS" not in result.stderr


def test_a_folder_is_not_a_missing_file(cli: CliRunner, home: Path) -> None:
    (home / "album").mkdir()
    result = cli.invoke(app, ["split", "album"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error INVALID_REQUEST: album is a folder")


def test_a_file_over_the_limit_names_the_setting(
    cli: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    song = write_test_tone(home / "song.wav", seconds=2.0)
    monkeypatch.setenv("STEMHUB_MAX_UPLOAD_BYTES", str(100 * 1024))

    result = cli.invoke(app, ["split", str(song)])

    assert result.exit_code == 2
    assert result.stderr.startswith("error FILE_TOO_LARGE: ")
    assert "the limit is 100 KiB" in result.stderr
    assert "STEMHUB_MAX_UPLOAD_BYTES" in result.stderr
    assert "song.wav" not in cli.invoke(app, ["jobs", "list"]).output


def test_bad_option_values_use_the_same_style(cli: CliRunner, home: Path) -> None:
    song = write_test_tone(home / "song.wav")
    result = cli.invoke(app, ["split", str(song), "--format", "OGG"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error INVALID_REQUEST: ")
    assert len(result.stderr.splitlines()) == 1


def test_version(cli: CliRunner) -> None:
    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"stemhub {__version__}"

"""Where stems go: checked before any work, one folder per input, written once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from stemhub.cli import app
from stemhub.testing import write_test_tone


def _jobs(cli: CliRunner) -> str:
    listed = cli.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    return listed.output


def test_an_existing_file_as_output_is_refused_before_any_job(cli: CliRunner, home: Path) -> None:
    song = write_test_tone(home / "song.wav")
    (home / "taken").write_text("not a folder")

    result = cli.invoke(app, ["split", str(song), "-o", "taken"])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error INVALID_REQUEST: Cannot write stems to {home / 'taken'}: "
        "it is a file, not a folder."
    ]
    assert "COMPLETED" not in _jobs(cli) and "song.wav" not in _jobs(cli)


def test_an_output_under_proc_is_refused_on_one_line(cli: CliRunner, home: Path) -> None:
    song = write_test_tone(home / "song.wav")

    result = cli.invoke(app, ["split", str(song), "-o", "/proc/stemhub-stems"])

    assert result.exit_code == 2
    assert result.stderr.startswith("error INVALID_REQUEST: Cannot write stems to /proc/")
    assert len(result.stderr.splitlines()) == 1
    assert "song.wav" not in _jobs(cli)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's sysfs")
def test_a_folder_that_refuses_new_files_is_refused_before_any_job(
    cli: CliRunner, home: Path
) -> None:
    # sysfs refuses new files to everyone, root included, as a read-only mount does
    # (chmod cannot show this under root, which CI runs as)
    song = write_test_tone(home / "song.wav")

    result = cli.invoke(app, ["split", str(song), "-o", "/sys/kernel"])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error INVALID_REQUEST: Cannot write stems to /sys/kernel: permission denied."
    ]
    assert "song.wav" not in _jobs(cli)


def test_inputs_with_the_same_base_name_get_a_folder_each(cli: CliRunner, home: Path) -> None:
    wav = write_test_tone(home / "song.wav", seconds=1.0)
    audio, rate = soundfile.read(str(wav), dtype="float32")
    flac = home / "song.flac"
    soundfile.write(str(flac), audio[:, ::-1], rate, format="FLAC")

    result = cli.invoke(app, ["split", str(wav), str(flac), "-o", "same", "--stems", "VOCALS"])

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (home / "same").iterdir()) == ["song-flac", "song-wav"]
    from_wav = soundfile.read(str(home / "same" / "song-wav" / "vocals.wav"))[0]
    from_flac = soundfile.read(str(home / "same" / "song-flac" / "vocals.wav"))[0]
    assert not np.allclose(from_wav, from_flac)


def test_stems_are_written_once_into_the_chosen_folder(cli: CliRunner, home: Path) -> None:
    song = write_test_tone(home / "song.wav", seconds=1.0)

    result = cli.invoke(app, ["split", str(song), "-o", "out", "--stems", "BOTH"])

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (home / "out" / "song").iterdir()) == [
        "instrumental.wav",
        "vocals.wav",
    ]
    kept = [p for p in (home / "data").rglob("*") if p.suffix in (".wav", ".flac", ".mp3")]
    assert kept == []


def _flac_24_96(path: Path, seconds: float = 1.0) -> Path:
    rate = 96000
    t = np.arange(int(seconds * rate)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], 1)
    with soundfile.SoundFile(
        str(path), "w", samplerate=rate, channels=2, subtype="PCM_24", format="FLAC"
    ) as handle:
        handle.title = "Night Drive"
        handle.artist = "The Testers"
        handle.write(audio)
    return path


def test_24_bit_input_keeps_24_bits_and_its_tags(cli: CliRunner, home: Path) -> None:
    song = _flac_24_96(home / "master.flac")

    wav = cli.invoke(app, ["split", str(song), "-o", "wav", "--stems", "VOCALS"])
    flac = cli.invoke(app, ["split", str(song), "-o", "flac", "-s", "VOCALS", "-f", "flac"])

    assert wav.exit_code == 0 and flac.exit_code == 0, wav.output + flac.output
    for stem in (home / "wav" / "master" / "vocals.wav", home / "flac" / "master" / "vocals.flac"):
        info = soundfile.info(str(stem))
        assert (info.subtype, info.samplerate) == ("PCM_24", 96000)
        with soundfile.SoundFile(str(stem)) as handle:
            assert handle.title == "Night Drive (vocals)"
            assert handle.artist == "The Testers"


def test_96_khz_to_mp3_is_resampled_to_48_khz(cli: CliRunner, home: Path) -> None:
    import av

    song = _flac_24_96(home / "master.flac")

    result = cli.invoke(app, ["split", str(song), "-o", "mp3", "-s", "VOCALS", "--format", "MP3"])

    assert result.exit_code == 0, result.output
    with av.open(str(home / "mp3" / "master" / "vocals.mp3")) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.sample_rate == 48000
        assert container.metadata.get("artist") == "The Testers"
    assert "1.0 s" in result.output

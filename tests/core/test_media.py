"""Sniffing, probing, decoding and encoding audio, on files made by PyAV and libsndfile."""

from __future__ import annotations

import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemhub.errors import ErrorCode, StemhubError
from stemhub.media import (
    AudioWriter,
    check_limits,
    decode,
    decode_blocks,
    encode,
    format_duration,
    probe,
    sniff,
)
from stemhub.models import AudioInfo, OutputFormat
from tests.core._audio import (
    LEFT_HZ,
    RIGHT_HZ,
    Sample,
    make_samples,
    peak_hz,
    tone,
    write_pyav,
    write_sndfile,
    write_video_only,
)

MB = 1024 * 1024
SAMPLE_NAMES = [
    "mp3-44k-stereo",
    "mp3-22k-mono",
    "mp3-48k-stereo",
    "wav-44k-stereo",
    "wav-22k-mono",
    "wav-48k-24bit",
    "wav-48k-float",
    "flac-44k-stereo",
    "flac-48k-mono",
    "aiff-44k-stereo",
    "m4a-44k-stereo",
    "m4a-48k-mono",
    "m4a-alac",
    "aac-adts-44k",
    "ogg-vorbis-44k",
    "ogg-vorbis-22k",
    "opus-48k-stereo",
    "opus-48k-mono",
    "webm-opus",
]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    return make_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(params=SAMPLE_NAMES)
def sample(request: pytest.FixtureRequest, samples: dict[str, Sample]) -> Sample:
    return samples[request.param]


def png_bytes() -> bytes:
    """A real 1x1 PNG image."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_sniff_names_the_real_container_whatever_the_file_is_called(sample: Sample) -> None:
    assert sniff(sample.path) == sample.container


def test_probe_reports_the_facts_of_every_input_format(sample: Sample) -> None:
    info = probe(sample.path)

    assert info.container == sample.container
    assert info.codec == sample.codec
    assert info.sample_rate == sample.sample_rate
    assert info.channels == sample.channels
    assert info.size_bytes == sample.path.stat().st_size
    assert info.duration_s == pytest.approx(sample.frames / sample.sample_rate, abs=0.06)


def test_decode_gives_float_samples_at_the_file_rate(sample: Sample) -> None:
    audio, rate = decode(sample.path)

    assert rate == sample.sample_rate
    assert audio.dtype == np.float32
    assert audio.ndim == 2
    assert audio.shape[0] == sample.channels
    assert float(np.abs(audio).max()) <= 1.0
    if sample.exact_length:
        assert audio.shape[1] == sample.frames
    else:
        # Lossy codecs without an end-trim record pad up to their last frame.
        assert abs(audio.shape[1] - sample.frames) <= 2048
    middle = slice(rate // 10, rate // 10 + 8192)
    assert peak_hz(audio[0, middle], rate) == pytest.approx(LEFT_HZ, abs=rate / 8192)
    if sample.channels == 2:
        assert peak_hz(audio[1, middle], rate) == pytest.approx(RIGHT_HZ, abs=rate / 8192)


def test_lossless_inputs_decode_to_the_samples_that_were_written(
    samples: dict[str, Sample],
) -> None:
    for name in ("wav-44k-stereo", "wav-48k-24bit", "flac-44k-stereo", "aiff-44k-stereo"):
        sample = samples[name]
        audio, _ = decode(sample.path)
        original = tone(sample.sample_rate, sample.frames, sample.channels)
        assert np.abs(audio - original).max() < 1e-4, name
    exact = samples["wav-48k-float"]
    audio, _ = decode(exact.path)
    np.testing.assert_array_equal(audio, tone(exact.sample_rate, exact.frames, 2))


@pytest.mark.parametrize(
    ("name", "target"),
    [("wav-48k-24bit", 44100), ("wav-22k-mono", 44100), ("mp3-44k-stereo", 48000)],
)
def test_decode_resamples_to_an_exact_length(
    samples: dict[str, Sample], name: str, target: int
) -> None:
    sample = samples[name]
    native, native_rate = decode(sample.path)

    audio, rate = decode(sample.path, sample_rate=target)

    assert rate == target
    assert audio.shape == (sample.channels, round(sample.frames * target / sample.sample_rate))
    middle = slice(target // 10, target // 10 + 8192)
    assert peak_hz(audio[0, middle], target) == pytest.approx(LEFT_HZ, abs=target / 8192)
    # Same level as before: the resampler neither lost nor added gain.
    level = float(np.abs(native[0, native_rate // 10 : native_rate // 10 + 8192]).max())
    assert float(np.abs(audio[0, middle]).max()) == pytest.approx(level, abs=0.01)


def test_decode_mono_averages_the_channels(samples: dict[str, Sample]) -> None:
    sample = samples["wav-44k-stereo"]

    audio, _ = decode(sample.path, mono=True)

    original = tone(sample.sample_rate, sample.frames, 2).mean(axis=0)
    assert audio.shape == (1, sample.frames)
    assert np.abs(audio[0] - original).max() < 1e-4


@pytest.mark.parametrize("name", ["flac-44k-stereo", "mp3-48k-stereo", "opus-48k-mono"])
def test_decode_blocks_is_decode_in_pieces(samples: dict[str, Sample], name: str) -> None:
    sample = samples[name]
    whole, _ = decode(sample.path)

    blocks = list(decode_blocks(sample.path, 4000))

    assert all(block.shape == (sample.channels, 4000) for block in blocks[:-1])
    assert 0 < blocks[-1].shape[1] <= 4000
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole)


def test_decode_blocks_resamples_and_downmixes_like_decode(samples: dict[str, Sample]) -> None:
    sample = samples["wav-48k-24bit"]
    whole, _ = decode(sample.path, sample_rate=44100, mono=True)

    blocks = list(decode_blocks(sample.path, 1024, sample_rate=44100, mono=True))

    np.testing.assert_allclose(np.concatenate(blocks, axis=1), whole, atol=1e-6)


def test_decode_blocks_keeps_memory_bounded_for_long_inputs(tmp_path: Path) -> None:
    rate, seconds = 44100, 30
    path = tmp_path / "long.wav"
    with AudioWriter(path, rate, 2, OutputFormat.WAV) as writer:
        for _ in range(seconds):
            writer.write(tone(rate, rate, 2))
    whole_float_bytes = 2 * rate * seconds * 4

    tracemalloc.start()
    try:
        frames = 0
        for block in decode_blocks(path, 8192):
            frames += block.shape[1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert frames == rate * seconds
    assert peak < whole_float_bytes / 8


@pytest.mark.parametrize(
    ("bit_depth", "subtype", "tolerance"),
    [(16, "PCM_16", 1e-4), (24, "PCM_24", 1e-6), (32, "FLOAT", 0.0)],
)
def test_encode_wav_at_each_bit_depth(
    tmp_path: Path, bit_depth: int, subtype: str, tolerance: float
) -> None:
    audio = tone(44100, 44100 + 17, 2)
    path = tmp_path / "vocals.wav"

    written = encode(path, audio, 44100, OutputFormat.WAV, bit_depth=bit_depth)  # type: ignore[arg-type]

    assert written == path.stat().st_size
    info = soundfile.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.frames) == (
        "WAV",
        subtype,
        44100,
        44100 + 17,
    )
    back, rate = decode(path)
    assert rate == 44100
    assert np.abs(back - audio).max() <= tolerance


@pytest.mark.parametrize(("bit_depth", "subtype"), [(16, "PCM_16"), (24, "PCM_24"), (32, "PCM_24")])
def test_encode_flac(tmp_path: Path, bit_depth: int, subtype: str) -> None:
    audio = tone(48000, 48000 + 3, 1)
    path = tmp_path / "bass.flac"

    written = encode(path, audio, 48000, OutputFormat.FLAC, bit_depth=bit_depth)  # type: ignore[arg-type]

    assert written == path.stat().st_size
    info = soundfile.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.frames) == (
        "FLAC",
        subtype,
        48000,
        48003,
    )
    back, _ = decode(path)
    assert np.abs(back - audio).max() < 1e-4


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (48000, 1), (22050, 2)])
def test_encode_mp3_keeps_rate_and_length_to_the_sample(
    tmp_path: Path, rate: int, channels: int
) -> None:
    frames = rate + 1234  # not a multiple of the 1152-sample MP3 frame
    audio = tone(rate, frames, channels)
    path = tmp_path / "drums.mp3"

    written = encode(path, audio, rate, OutputFormat.MP3, mp3_bitrate_kbps=192)

    assert written == path.stat().st_size
    assert sniff(path) == "mp3"
    info = probe(path)
    assert (info.sample_rate, info.channels) == (rate, channels)
    assert info.duration_s == pytest.approx(frames / rate, abs=1e-3)
    back, back_rate = decode(path)
    assert back_rate == rate
    assert back.shape == audio.shape
    # Aligned, not shifted by the encoder delay: the waveforms match closely.
    assert np.corrcoef(back[0], audio[0])[0, 1] > 0.99


def test_mp3_bitrate_sets_the_size(tmp_path: Path) -> None:
    audio = tone(44100, 44100 * 2, 2)

    small = encode(tmp_path / "a.mp3", audio, 44100, OutputFormat.MP3, mp3_bitrate_kbps=96)
    large = encode(tmp_path / "b.mp3", audio, 44100, OutputFormat.MP3, mp3_bitrate_kbps=320)

    assert small == pytest.approx(96_000 / 8 * 2, rel=0.15)
    assert large == pytest.approx(320_000 / 8 * 2, rel=0.15)


def test_encode_takes_a_one_dimensional_mono_array_and_clips(tmp_path: Path) -> None:
    audio = np.array([0.0, 0.5, 1.5, -2.0, -0.5] * 1000, dtype=np.float32)
    path = tmp_path / "other.wav"

    encode(path, audio, 22050, OutputFormat.WAV, bit_depth=32)

    back, rate = decode(path)
    assert (back.shape, rate) == ((1, 5000), 22050)
    np.testing.assert_array_equal(back[0], np.clip(audio, -1, 1))


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_audio_writer_in_blocks_matches_encode_in_one_go(tmp_path: Path, fmt: OutputFormat) -> None:
    audio = tone(44100, 3 * 44100 + 5, 2)
    whole = tmp_path / f"whole.{fmt.extension}"
    pieces = tmp_path / f"pieces.{fmt.extension}"
    encode(whole, audio, 44100, fmt)

    with AudioWriter(pieces, 44100, 2, fmt) as writer:
        for start in range(0, audio.shape[1], 10_000):
            writer.write(audio[:, start : start + 10_000])
        assert not pieces.exists()  # only complete files carry the final name
    assert writer.frames_written == audio.shape[1]

    expected, _ = decode(whole)
    got, _ = decode(pieces)
    assert got.shape == audio.shape
    np.testing.assert_allclose(got, expected, atol=1e-6 if fmt is not OutputFormat.MP3 else 0.02)


def test_audio_writer_leaves_nothing_behind_when_the_engine_fails(tmp_path: Path) -> None:
    path = tmp_path / "vocals.flac"

    with pytest.raises(RuntimeError), AudioWriter(path, 44100, 2, OutputFormat.FLAC) as writer:
        writer.write(tone(44100, 1000, 2))
        raise RuntimeError("engine crashed")

    assert list(tmp_path.iterdir()) == []


def test_mp3_refuses_a_rate_it_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(StemhubError) as caught:
        encode(tmp_path / "a.mp3", tone(96000, 960, 2), 96000, OutputFormat.MP3)

    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert "96000 Hz" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_blocks_of_the_wrong_shape(tmp_path: Path) -> None:
    with AudioWriter(tmp_path / "a.wav", 44100, 2, OutputFormat.WAV) as writer:
        with pytest.raises(ValueError):
            writer.write(np.zeros((3, 10), dtype=np.float32))
        writer.write(np.zeros((2, 10), dtype=np.float32))
    assert soundfile.info(str(tmp_path / "a.wav")).frames == 10


def test_sniff_sees_through_id3_tags_and_leading_padding(tmp_path: Path) -> None:
    audio = tone(44100, 44100, 2)
    flac = write_sndfile(tmp_path / "a.flac", audio, 44100, "FLAC", "PCM_16")
    tag = b"ID3\x04\x00\x00\x00\x00\x02\x00" + b"\x00" * 256  # a 256-byte ID3v2.4 tag
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(tag + flac.read_bytes())
    mp3 = tmp_path / "a.mp3"
    encode(mp3, audio, 44100, OutputFormat.MP3)
    padded = tmp_path / "padded.bin"
    padded.write_bytes(b"\x00" * 300 + mp3.read_bytes()[mp3.read_bytes().index(b"\xff\xfb") :])

    assert sniff(tagged) == "flac"
    assert sniff(padded) == "mp3"


@pytest.mark.parametrize(
    "name",
    [
        "mp3-44k-stereo",
        "wav-44k-stereo",
        "wav-48k-24bit",
        "flac-44k-stereo",
        "aiff-44k-stereo",
        "m4a-44k-stereo",
        "m4a-alac",
        "webm-opus",
        "ogg-vorbis-44k",
    ],
)
def test_a_file_cut_in_half_is_corrupt(
    samples: dict[str, Sample], tmp_path: Path, name: str
) -> None:
    data = samples[name].path.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) // 2])

    with pytest.raises(StemhubError) as caught:
        probe(cut)

    assert caught.value.code is ErrorCode.CORRUPT_AUDIO
    assert "cut short" in caught.value.message or "damaged or incomplete" in caught.value.message


def test_a_cut_wav_says_how_much_is_missing(samples: dict[str, Sample], tmp_path: Path) -> None:
    data = samples["wav-44k-stereo"].path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 44100 * 2 * 2 // 4])  # header + a quarter second

    with pytest.raises(StemhubError) as caught:
        probe(cut)

    assert caught.value.message == (
        "The WAV file is cut short: it should run 1 second but the audio stops after "
        "0.3 seconds. Upload it again, or send the complete file."
    )


def test_zero_length_audio_is_refused(tmp_path: Path) -> None:
    empty_wav = write_sndfile(
        tmp_path / "silence.wav", np.zeros((2, 0), np.float32), 44100, "WAV", "PCM_16"
    )

    for check in (probe, decode):
        with pytest.raises(StemhubError) as caught:
            check(empty_wav)
        assert caught.value.code is ErrorCode.CORRUPT_AUDIO
        assert "holds no sound" in caught.value.message


def test_a_video_without_sound_is_refused(tmp_path: Path) -> None:
    video = write_video_only(tmp_path / "clip.mp4")

    assert sniff(video) == "m4a"
    for check in (probe, decode):
        with pytest.raises(StemhubError) as caught:
            check(video)
        assert caught.value.code is ErrorCode.UNSUPPORTED_FORMAT
        assert caught.value.message == "The file is a video with no sound track."


def _html() -> bytes:
    return b"\xef\xbb\xbf\n  <!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>"


def _zip(path: Path) -> bytes:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("song.mp3", b"not really")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "looks_like"),
    [
        ("random.mp3", lambda p: np.random.default_rng(7).bytes(40_000), None),
        ("picture.wav", lambda p: png_bytes(), "a PNG image"),
        ("login.mp3", lambda p: _html(), "a web page (HTML)"),
        ("error.mp3", lambda p: b'<?xml version="1.0"?><Error><Code>AccessDenied</Code>', "XML"),
        ("error.m4a", lambda p: b'{"error": "link expired"}', "JSON"),
        ("notes.flac", lambda p: b"track list:\n1. intro\n2. outro\n", "a text file"),
        ("album.mp3", _zip, "a ZIP archive"),
        ("photo.mp3", lambda p: b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(200), "a JPEG image"),
        ("song.mid", lambda p: b"MThd\x00\x00\x00\x06" + bytes(30), "a MIDI file"),
    ],
)
def test_what_is_not_audio_is_named_for_what_it_is(
    tmp_path: Path, name: str, make: object, looks_like: str | None
) -> None:
    path = tmp_path / name
    content = make(path)  # type: ignore[operator]
    path.write_bytes(content)

    for check in (sniff, probe, decode):
        with pytest.raises(StemhubError) as caught:
            check(path)
        assert caught.value.code is ErrorCode.UNSUPPORTED_FORMAT
        if looks_like is None:
            assert "not in an audio format we can read" in caught.value.message
        else:
            assert looks_like in caught.value.message


def test_an_empty_file_and_a_missing_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")

    with pytest.raises(StemhubError) as caught:
        probe(empty)
    assert caught.value.code is ErrorCode.UNSUPPORTED_FORMAT
    assert caught.value.message.startswith("The file is empty.")

    with pytest.raises(StemhubError) as caught:
        probe(tmp_path / "gone.mp3")
    assert caught.value.code is ErrorCode.NOT_FOUND


@pytest.mark.parametrize(
    "name", ["mp3-44k-stereo", "flac-44k-stereo", "m4a-44k-stereo", "webm-opus"]
)
def test_damaged_bytes_never_escape_as_anything_but_stemhub_errors(
    samples: dict[str, Sample], tmp_path: Path, name: str
) -> None:
    original = samples[name].path.read_bytes()
    rng = np.random.default_rng(11)
    outcomes: set[str] = set()
    for attempt in range(12):
        data = bytearray(original)
        start = int(rng.integers(0, len(data) - 600))
        data[start : start + 512] = rng.bytes(512)
        path = tmp_path / f"damaged-{attempt}.bin"
        path.write_bytes(bytes(data))
        for check in (probe, decode):
            try:
                check(path)
                outcomes.add("read")
            except StemhubError as error:
                outcomes.add(error.code.value)
    assert outcomes <= {"read", "CORRUPT_AUDIO", "UNSUPPORTED_FORMAT"}


def test_check_limits_explains_each_refusal() -> None:
    info = AudioInfo(size_bytes=120 * MB, duration_s=200.0)
    with pytest.raises(StemhubError) as caught:
        check_limits(info, max_bytes=100 * MB, max_duration_s=3600)
    assert caught.value.code is ErrorCode.FILE_TOO_LARGE
    assert caught.value.message == "The file is 120 MiB; the limit is 100 MiB."

    info = AudioInfo(size_bytes=MB, duration_s=72 * 60.0)
    with pytest.raises(StemhubError) as caught:
        check_limits(info, max_bytes=100 * MB, max_duration_s=3600)
    assert caught.value.code is ErrorCode.AUDIO_TOO_LONG
    assert caught.value.message == "The audio is 72 minutes long; the limit is 60 minutes."

    info = AudioInfo(size_bytes=MB, duration_s=0.2)
    with pytest.raises(StemhubError) as caught:
        check_limits(info, max_bytes=None, max_duration_s=None)
    assert caught.value.code is ErrorCode.AUDIO_TOO_SHORT
    assert caught.value.message == (
        "The audio is 0.2 seconds long; it needs to be at least 0.5 seconds."
    )

    check_limits(AudioInfo(size_bytes=MB, duration_s=10.0), max_bytes=MB, max_duration_s=10.0)
    check_limits(AudioInfo(), max_bytes=1, max_duration_s=1.0)


def test_limits_apply_to_a_probed_file(samples: dict[str, Sample]) -> None:
    info = probe(samples["flac-44k-stereo"].path)

    with pytest.raises(StemhubError) as caught:
        check_limits(info, max_bytes=None, max_duration_s=0.5, min_duration_s=0.1)

    assert caught.value.code is ErrorCode.AUDIO_TOO_LONG
    assert caught.value.message == "The audio is 1 second long; the limit is 0.5 seconds."


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.25, "0.3 seconds"),
        (1.0, "1 second"),
        (45.0, "45 seconds"),
        (60.0, "1 minute"),
        (3600.0, "60 minutes"),
        (3601.0, "60.1 minutes"),
        (3 * 3600.0, "3 hours"),
    ],
)
def test_format_duration(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_opus_and_vorbis_mono_at_other_rates(tmp_path: Path) -> None:
    audio = tone(24000, 24000, 1)
    path = write_pyav(tmp_path / "voice.bin", audio, 24000, "libopus", "ogg")

    info = probe(path)
    back, rate = decode(path)

    # Opus always decodes at 48 kHz; the file's nominal rate is what FFmpeg reports.
    assert info.channels == 1
    assert rate == info.sample_rate
    assert back.shape[0] == 1

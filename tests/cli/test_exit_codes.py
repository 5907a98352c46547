"""Exit codes as the README documents them: 0 ok, 1 job failed, 2 bad usage or input
(before the job or found inside it), 3 configuration missing, 130 interrupted."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemhub.cli import app
from stemhub.config import Settings
from stemhub.testing import write_test_tone

from .conftest import STEMHUB, Shell


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_failed_job_exits_1_with_one_line_and_no_log_line(shell: Shell, home: Path) -> None:
    song = write_test_tone(home / "song.wav")
    unreachable = f"http://127.0.0.1:{_closed_port()}/api/v1"

    result = shell(
        "split",
        str(song),
        env={"STEMSPLIT_API_KEY": "sk_test_x", "STEMHUB_STEMSPLIT_BASE_URL": unreachable},
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"error BACKEND_UNAVAILABLE: {song}: The separation service is not answering right "
        "now. Try again in a few minutes."
    ]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(2000), "UNSUPPORTED_FORMAT"),
        (b"", "UNSUPPORTED_FORMAT"),
    ],
)
def test_bad_input_found_inside_the_job_exits_2(
    cli: CliRunner, home: Path, content: bytes, code: str
) -> None:
    fake = home / "song.mp3"
    fake.write_bytes(content)

    result = cli.invoke(app, ["split", str(fake)])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error {code}: {fake}: ")


def test_too_short_and_cut_short_audio_exit_2(cli: CliRunner, home: Path) -> None:
    short = write_test_tone(home / "short.wav", seconds=0.1)
    whole = write_test_tone(home / "whole.wav", seconds=2.0)
    cut = home / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    result = cli.invoke(app, ["split", str(short), str(cut)])

    assert result.exit_code == 2, result.output
    codes = [line.split(":")[0] for line in result.stderr.splitlines()]
    assert codes == ["error AUDIO_TOO_SHORT", "error CORRUPT_AUDIO"]


def test_an_unknown_backend_is_bad_usage(cli: CliRunner, home: Path) -> None:
    song = write_test_tone(home / "song.wav")
    result = cli.invoke(app, ["split", str(song), "--backend", "nosuch"])
    assert result.exit_code == 2
    assert "'nosuch'" in result.stderr and "local" in result.stderr


def test_a_missing_key_is_configuration_missing(cli: CliRunner, home: Path) -> None:
    song = write_test_tone(home / "song.wav")
    result = cli.invoke(app, ["split", str(song), "--backend", "stemsplit"])
    assert result.exit_code == 3
    assert result.stderr.startswith("error CONFIG_MISSING: ")
    assert "STEMSPLIT_API_KEY" in result.stderr


def test_backend_names_take_any_case(cli: CliRunner, home: Path) -> None:
    song = write_test_tone(home / "song.wav")
    result = cli.invoke(app, ["split", str(song), "--backend", "LOCAL", "-s", "VOCALS"])
    assert result.exit_code == 0, result.output
    assert "local: asked for" in result.output


def _statuses(home: Path) -> list[tuple[str, str]]:
    """(status, stage) of every job in the command's SQLite file: a plain query (no
    engine, no event loop), cheap enough to poll while the command runs."""
    path = Settings().data_dir / "stemhub.db"
    if not path.exists():
        return []
    connection = sqlite3.connect(path, timeout=30)
    try:
        rows = connection.execute("SELECT status, stage FROM jobs").fetchall()
    except sqlite3.OperationalError:  # the command has not created the table yet
        return []
    finally:
        connection.close()
    return [(str(status), str(stage)) for status, stage in rows]


class HeldSong(http.server.BaseHTTPRequestHandler):
    """Serves a song's first bytes, then holds the rest until the test lets it go: the
    job stays in its fetch stage, however fast or slow the machine, until Ctrl-C."""

    body = b""
    started = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[:65536])
        self.wfile.flush()
        type(self).started.set()
        type(self).release.wait(timeout=600)
        with contextlib.suppress(OSError):  # the command hung up on Ctrl-C
            self.wfile.write(self.body[65536:])

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.timeout(600)
def test_ctrl_c_cancels_the_job_it_started_and_exits_130(home: Path) -> None:
    HeldSong.body = write_test_tone(home / "long.wav", seconds=30.0).read_bytes()
    HeldSong.started.clear()
    HeldSong.release.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HeldSong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/long.wav"
    try:
        # the command starts as from a terminal, with Ctrl-C at its default: a runner that
        # started this test in the background (``cmd &`` in a script) ignores SIGINT, and
        # its children would inherit that; os.execv keeps the pid the signal goes to
        reset_ctrl_c = (
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        process = subprocess.Popen(
            [sys.executable, "-c", reset_ctrl_c, STEMHUB, "split", url],
            cwd=home,
            env={**os.environ, "STEMHUB_ALLOW_PRIVATE_NETWORKS": "true"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while not (HeldSong.started.is_set() and ("RUNNING", "fetch") in _statuses(home)):
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            _out, err = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
    finally:
        HeldSong.release.set()
        server.shutdown()
        server.server_close()

    assert process.returncode == 130, err
    assert err.splitlines()[-1].startswith("error JOB_CANCELLED: ")
    assert [status for status, _stage in _statuses(home)] == ["CANCELLED"]

"""`stemhub run` as an operator starts it: serves, then stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from stemhub.testing import free_port


def test_run_serves_http_and_stops_on_sigterm(tmp_path: Path) -> None:
    """With every plugin installed and none configured, the hub still runs and serves."""
    port = free_port()
    env = os.environ | {
        "STEMHUB_DATA_DIR": str(tmp_path / "data"),
        "STEMHUB_HTTP_PORT": str(port),
        "STEMHUB_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    for name in ("STEMHUB_PLUGINS", "DISCORD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from stemhub.cli import main; main()", "run", "--http"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the hub did not start serving"
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["status"] == "ready"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "stopping: unfinished jobs stay queued" in output

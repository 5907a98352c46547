"""A hub killed with SIGKILL at any stage restarts and finishes every job, once.

Each test runs the hub in a real subprocess (tests/core/_recovery_app.py), kills it with
SIGKILL at a chosen moment, starts a new hub process on the same store, and counts the
backend starts and deliveries the processes logged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stemhub.models import Job, JobStatus, Stage
from stemhub.testing import patience, write_test_tone

ROOT = Path(__file__).resolve().parents[2]


def start_hub(
    data_dir: Path, action: str, resumable: bool, deliver_s: float = 0.0
) -> subprocess.Popen[str]:
    mode = "resumable" if resumable else "once"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.core._recovery_app",
            str(data_dir),
            action,
            mode,
            str(deliver_s),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )


def read_job(data_dir: Path, job_id: str) -> Job | None:
    """Read the job row with the stdlib driver: fast, and no event loop in the test."""
    db = data_dir / "stemhub.db"
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        row = conn.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return Job.model_validate_json(row[0]) if row else None


def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_test_tone(tmp_path / "input.wav", seconds=0.5)
    return tmp_path


@pytest.mark.parametrize("resumable", [True, False], ids=["remote-id-resumed", "resubmitted"])
def test_killed_during_separation(data_dir: Path, resumable: bool) -> None:
    first = start_hub(data_dir, "submit", resumable)
    assert first.stdout is not None
    job_id = first.stdout.readline().strip()
    try:
        wait_until(
            lambda: (j := read_job(data_dir, job_id)) is not None and j.remote_id is not None
        )
        assert read_job(data_dir, job_id).stage is Stage.SEPARATE  # type: ignore[union-attr]
    finally:
        kill(first)

    second = start_hub(data_dir, "run", resumable)
    try:
        wait_until(lambda: read_job(data_dir, job_id).stage is Stage.DONE)  # type: ignore[union-attr]
    finally:
        kill(second)
    job = read_job(data_dir, job_id)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert set(job.outputs) == {"vocals", "instrumental"}
    assert lines(data_dir / "deliveries.log") == [job_id]
    starts = lines(data_dir / "starts.log")
    assert len(starts) == (1 if resumable else 2)


def test_killed_during_delivery_delivers_once(data_dir: Path) -> None:
    first = start_hub(data_dir, "submit", True, deliver_s=5.0)
    assert first.stdout is not None
    job_id = first.stdout.readline().strip()
    try:
        wait_until(lambda: read_job(data_dir, job_id).stage is Stage.DELIVER)  # type: ignore[union-attr]
    finally:
        kill(first)
    assert lines(data_dir / "deliveries.log") == []
    second = start_hub(data_dir, "run", True)
    try:
        wait_until(lambda: read_job(data_dir, job_id).stage is Stage.DONE)  # type: ignore[union-attr]
    finally:
        kill(second)
    assert lines(data_dir / "deliveries.log") == [job_id]
    assert len(lines(data_dir / "starts.log")) == 1


def test_delivered_job_is_not_delivered_again_after_restart(data_dir: Path) -> None:
    first = start_hub(data_dir, "submit", True)
    assert first.stdout is not None
    job_id = first.stdout.readline().strip()
    try:
        wait_until(lambda: read_job(data_dir, job_id).stage is Stage.DONE)  # type: ignore[union-attr]
    finally:
        kill(first)
    second = start_hub(data_dir, "run", True)
    time.sleep(2.0)  # two lease periods: long enough for any wrongful resume
    kill(second)
    assert lines(data_dir / "deliveries.log") == [job_id]
    assert len(lines(data_dir / "starts.log")) == 1

"""The cluster run: 2 hubs + 2 workers as processes, jobs from the bridge and the CLI,
one worker and one hub SIGKILLed mid-run and restarted. Nothing is lost, nothing is
finished or delivered twice, every stem downloads from either hub.

The job count is ``STEMHUB_TEST_CLUSTER_JOBS`` (default 40: enough that both kills land
among running jobs, small enough for CI on 2 cores); ``bench/cluster.py --kill-run``
runs the same at 200 and prints the figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stemhub.models import JobStatus, Stage
from tests.scale._cluster_run import run_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(1800)]

JOBS = int(os.environ.get("STEMHUB_TEST_CLUSTER_JOBS", "40"))
CLI_JOBS = max(2, JOBS // 10)


async def test_jobs_from_the_bridge_and_the_cli_survive_a_worker_and_a_hub_killed_mid_run(
    rabbitmq: str, postgres_url: str, s3: Any, tmp_path: Path
) -> None:
    services = {"STEMHUB_DATABASE_URL": postgres_url, "STEMHUB_BROKER_URL": rabbitmq, **s3.env()}

    run = await run_cluster(tmp_path, services, jobs=JOBS, cli_jobs=CLI_JOBS)

    # the kills hit work in flight
    assert run.worker_killed_mid_task
    assert run.hub_killed_holding > 0
    assert run.redelivered_tasks >= 1
    # nothing lost: every job was accepted once (idempotency keys across the hubs) ...
    assert len(run.bridge_jobs) == JOBS
    assert run.cli_exit == 0, run.cli_output[-3000:]
    assert len(run.cli_jobs) == CLI_JOBS
    assert set(run.jobs) == set(run.bridge_jobs) | set(run.cli_jobs)
    # ... and finished once, with its stems, its delivery ended
    for job in run.jobs.values():
        assert job.status is JobStatus.COMPLETED, (job.id, job.error_message)
        assert job.stage is Stage.DONE and job.delivered_at is not None, job.id
        assert sorted(job.outputs) == ["instrumental", "vocals"]
    # delivered once: one final callback per job (one webhook id; retries keep the id)
    final_ids = run.final_ids()
    assert {job: len(ids) for job, ids in final_ids.items()} == dict.fromkeys(run.bridge_jobs, 1)
    events = {(p.job, p.event) for p in run.posts if p.job}
    assert events == {(job, "job.completed") for job in run.bridge_jobs}
    # every stem from either hub (bridge jobs) and from its link (CLI jobs)
    expected = 2 * 2 * JOBS + 2 * CLI_JOBS
    assert run.downloads == {"ok": expected}

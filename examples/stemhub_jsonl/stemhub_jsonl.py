"""A complete stemhub plugin: one JSON line per delivered job, plus a size policy."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stemhub import ErrorCode, Job, JobRequest, RequestRejected, hookimpl

MAX_MB = float(os.environ.get("STEMHUB_JSONL_MAX_MB", "50"))


@hookimpl
def stemhub_validate_request(request: JobRequest) -> None:
    size = request.source.size_bytes
    if size is not None and size > MAX_MB * 1e6:
        raise RequestRejected(
            ErrorCode.FILE_TOO_LARGE, f"This hub takes files up to {MAX_MB:.0f} MB."
        )


@hookimpl
def stemhub_job_delivered(job: Job) -> None:
    path = Path(os.environ.get("STEMHUB_JSONL_PATH", "stemhub-jobs.jsonl"))
    line = {"id": job.id, "status": job.status.value, "stems": sorted(job.outputs)}
    with path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")

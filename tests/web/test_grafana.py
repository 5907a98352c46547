"""The Grafana dashboard charts only metrics that /metrics really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stemhub_n8n_bridge.metrics import BridgeMetrics

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "stemhub.json"


def _exported() -> set[str]:
    metrics = BridgeMetrics()
    metrics.job_duration.labels(status="COMPLETED").observe(3)
    metrics.webhook_attempts.labels(event="job.completed", outcome="delivered").inc()
    metrics.webhook_latency.observe(0.2)
    text = metrics.render({"COMPLETED": 1}, {"pending": 1}).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_every_query_names_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    exported = _exported()
    for expr in exprs:
        names = set(re.findall(r"\bstemhub_[a-z_]+\b", expr))
        assert names, expr
        assert names <= exported, (expr, sorted(names - exported))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))

"""Prometheus metrics for ``/metrics``: jobs by status, durations, webhook deliveries.

Job counts by status and the outbox backlog come from the store when scraped, so they
are the same whichever hub instance answers; durations and delivery attempts are
counted by this process (Prometheus sums them across instances). Each bridge has its
own registry, so two hubs in one process (tests) do not collide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stemhub import JobStatus

if TYPE_CHECKING:
    from stemhub import Attempt, Job

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)


class BridgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs = Gauge(
            "stemhub_jobs", "Jobs in the store by status.", ["status"], registry=self.registry
        )
        self.job_duration = Histogram(
            "stemhub_job_duration_seconds",
            "Time from submission to the end of a job, by final status.",
            ["status"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "stemhub_webhook_deliveries",
            "Webhook delivery attempts by event and outcome (delivered, retry, failed).",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.webhook_latency = Histogram(
            "stemhub_webhook_delivery_seconds",
            "Time a receiver took to answer a webhook.",
            registry=self.registry,
        )
        self.outbox = Gauge(
            "stemhub_webhook_outbox_messages",
            "Webhook messages in the outbox by status.",
            ["status"],
            registry=self.registry,
        )

    def job_finished(self, job: Job) -> None:
        if job.finished_at is None:
            return
        seconds = (job.finished_at - job.created_at).total_seconds()
        self.job_duration.labels(status=job.status.value).observe(max(0.0, seconds))

    def webhook_attempt(self, attempt: Attempt) -> None:
        self.webhook_attempts.labels(event=attempt.event, outcome=attempt.outcome).inc()
        self.webhook_latency.observe(attempt.duration_s)

    def render(self, jobs_by_status: dict[str, int], outbox_by_status: dict[str, int]) -> bytes:
        for status in JobStatus:
            self.jobs.labels(status=status.value).set(jobs_by_status.get(status.value, 0))
        for name in ("pending", "delivered", "failed"):
            self.outbox.labels(status=name).set(outbox_by_status.get(name, 0))
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "BridgeMetrics"]

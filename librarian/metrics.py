"""GET /metrics: Prometheus metrics, computed from the database when scraped.

Why from the database and not counters kept in the workers: the workers are
django-q2 processes with no HTTP port, on as many machines as you like, that
come and go (`recycle`, `--scale worker=N`). Counters in their memory (or in a
prometheus_client multiprocess directory, which only one machine can share)
would be lost or unreachable. The durable event log already records what
happened: `stage_completed` carries `duration_ms`, a job's `started_at` minus
its `created_at` is its wait in the queue, `stage_progress` of the fetch
carries the HTTP `status_code`. So any web node answers for the whole cluster.

Histograms and `_total` values are cumulative over the rows that exist, so
they drop when `prune_jobs` deletes old jobs; Prometheus' `rate()` reads a drop
as a counter reset. Only the stream gauges and `process_*` are per web process
(they count the clients of the process that answers): scrape each web node.

Access: a logged-in staff user, or `Authorization: Bearer <LIBRARIAN_METRICS_TOKEN>`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ingestion.models import Job, JobEvent, Status
from library.models import Chunk, LibraryItem, Tier

STAGE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
QUEUE_WAIT_BUCKETS_S = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
JOB_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _buckets(counts: Sequence[int], total: int, bounds: Sequence[float]) -> list[tuple[str, int]]:
    return [*((repr(b), c) for b, c in zip(bounds, counts, strict=True)), ("+Inf", total)]


def _event_ms(rows: QuerySet[JobEvent], bounds: Sequence[float]) -> QuerySet[Any]:
    """Per stage: how many events took at most each bound, how many in all, their sum."""
    value = Cast(KeyTextTransform("duration_ms", "data"), FloatField())
    limits = {f"le{i}": Count("pk", filter=Q(ms__lte=b * 1000)) for i, b in enumerate(bounds)}
    return (
        rows.annotate(ms=value)
        .filter(ms__isnull=False)
        .values("stage")
        .order_by("stage")
        .annotate(total=Count("pk"), sum_ms=Sum("ms"), **limits)
    )


def stage_durations() -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "librarian_stage_duration_seconds",
        "Time each pipeline stage took (stage_completed events).",
        labels=["stage"],
    )
    events = JobEvent.objects.filter(type="stage_completed")
    for row in _event_ms(events, STAGE_BUCKETS_S):
        counts = [row[f"le{i}"] for i in range(len(STAGE_BUCKETS_S))]
        family.add_metric(
            [row["stage"]],
            _buckets(counts, row["total"], STAGE_BUCKETS_S),
            (row["sum_ms"] or 0.0) / 1000,
        )
    return family


def job_durations() -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "librarian_job_duration_seconds",
        "Time from a job's start to its completion (job_completed events, from-library excluded).",
    )
    events = JobEvent.objects.filter(type="job_completed").exclude(data__duration_ms=0)
    total, sum_ms, counts = _merge(_event_ms(events, JOB_BUCKETS_S), len(JOB_BUCKETS_S))
    family.add_metric([], _buckets(counts, total, JOB_BUCKETS_S), sum_ms / 1000)
    return family


def _merge(rows: Iterable[dict[str, Any]], size: int) -> tuple[int, float, list[int]]:
    total, sum_ms, counts = 0, 0.0, [0] * size
    for row in rows:
        total += row["total"]
        sum_ms += row["sum_ms"] or 0.0
        counts = [c + row[f"le{i}"] for i, c in enumerate(counts)]
    return total, sum_ms, counts


def queue_wait() -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "librarian_queue_wait_seconds",
        "Time a job waited in the queue before a worker first claimed it.",
    )
    wait = ExpressionWrapper(F("started_at") - F("created_at"), output_field=DurationField())
    limits = {
        f"le{i}": Count("pk", filter=Q(wait__lte=timedelta(seconds=b)))
        for i, b in enumerate(QUEUE_WAIT_BUCKETS_S)
    }
    row = (
        Job.objects.filter(started_at__isnull=False)
        # A URL already in the library completes at once: it never queued.
        .exclude(result__from_library=True)
        .annotate(wait=wait)
        .aggregate(total=Count("pk"), sum_wait=Sum("wait"), **limits)
    )
    counts = [row[f"le{i}"] for i in range(len(QUEUE_WAIT_BUCKETS_S))]
    summed = row["sum_wait"] or timedelta(0)
    family.add_metric(
        [], _buckets(counts, row["total"], QUEUE_WAIT_BUCKETS_S), summed.total_seconds()
    )
    return family


def jobs_by_status() -> Iterator[Metric]:
    jobs = GaugeMetricFamily("librarian_jobs", "Jobs by status.", labels=["status"])
    counts = dict(Job.objects.values_list("status").annotate(n=Count("pk")).order_by())
    for status in Status.values:
        jobs.add_metric([status], counts.get(status, 0))
    yield jobs
    failed = GaugeMetricFamily(
        "librarian_jobs_failed", "Failed jobs by failure reason.", labels=["reason"]
    )
    reasons = (
        Job.objects.filter(status=Status.FAILED)
        .values_list("error_type")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for reason, n in reasons:
        failed.add_metric([reason or "unknown"], n)
    yield failed
    oldest = (
        Job.objects.filter(status=Status.QUEUED)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    age = GaugeMetricFamily(
        "librarian_queue_oldest_age_seconds", "Age of the oldest queued job (0 when none)."
    )
    age.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0.0)
    yield age


def fetch_status_codes() -> CounterMetricFamily:
    family = CounterMetricFamily(
        "librarian_fetch_responses",
        "HTTP status codes of fetched pages (events carrying status_code).",
        labels=["code"],
    )
    rows = (
        JobEvent.objects.filter(data__has_key="status_code")
        .annotate(code=KeyTextTransform("status_code", "data"))
        .values_list("code")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for code, n in rows:
        family.add_metric([str(code)], n)
    return family


def library_sizes() -> Iterator[Metric]:
    items = GaugeMetricFamily("librarian_library_items", "Library items by tier.", labels=["tier"])
    counts = dict(LibraryItem.objects.values_list("tier").annotate(n=Count("pk")).order_by())
    for tier in Tier.values:
        items.add_metric([tier], counts.get(tier, 0))
    yield items
    pending = GaugeMetricFamily(
        "librarian_chunks_unindexed", "Embedded chunks not yet in the vector index."
    )
    pending.add_metric([], Chunk.objects.filter(indexed_at__isnull=True).count())
    yield pending


def stream_client_counts() -> dict[str, tuple[int, int]]:
    """(topics, subscribers) per kind ("job", "user") in this process's stream hubs."""
    from ingestion import stream_hub

    counts = {"job": (0, 0), "user": (0, 0)}
    # The hubs live on the event loop; list() of a dict is atomic under the GIL,
    # so reading them from this (view) thread never sees a half-changed dict.
    for hub in list(getattr(stream_hub, "_hubs", {}).values()):
        for topic in list(hub.topics.values()):
            kind = topic.key.split(":", 1)[0]
            topics, clients = counts.get(kind, (0, 0))
            counts[kind] = (topics + 1, clients + len(topic.subscribers))
    return counts


def stream_clients() -> Iterator[Metric]:
    clients = GaugeMetricFamily(
        "librarian_stream_clients",
        "Open SSE and WebSocket streams in this web process, by what they follow.",
        labels=["kind"],
    )
    topics = GaugeMetricFamily(
        "librarian_stream_topics",
        "Live subscriptions this web process holds (one per watched job or user).",
        labels=["kind"],
    )
    for kind, (n_topics, n_clients) in stream_client_counts().items():
        clients.add_metric([kind], n_clients)
        topics.add_metric([kind], n_topics)
    yield clients
    yield topics


class LibrarianCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("librarian_info", "The running version.", labels=["version"])
        info.add_metric([settings.VERSION], 1)
        yield info
        yield from jobs_by_status()
        yield queue_wait()
        yield stage_durations()
        yield job_durations()
        yield fetch_status_codes()
        yield from library_sizes()
        yield from stream_clients()


def render_metrics() -> bytes:
    # A registry per scrape: every value is read fresh, nothing lingers between scrapes.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LibrarianCollector())
    ProcessCollector(registry=registry)
    return generate_latest(registry)


def _bearer_ok(request: HttpRequest) -> bool:
    expected = str(getattr(settings, "LIBRARIAN_METRICS_TOKEN", "") or "")
    kind, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or kind.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _bearer_ok(request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            response = HttpResponse("authentication required\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        if not user.is_staff:
            return HttpResponse("staff only\n", status=403)
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)

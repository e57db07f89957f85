"""Eight real articles on unrelated topics, served by the page server and ingested
through the real pipeline (submit, then run the job as a worker would)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingestion import services as ingestion_services
from ingestion import tasks
from ingestion.models import Job
from library.models import LibraryItem
from tests.pageserver import PageServer

FOLDER = Path(__file__).parent
SLUGS = (
    "sourdough",
    "coral-reefs",
    "night-trains",
    "sleep-memory",
    "geothermal",
    "bebop",
    "index-funds",
    "castles",
)


def page(slug: str) -> str:
    return (FOLDER / f"{slug}.html").read_text(encoding="utf-8")


def ingest(url: str) -> Job:
    """Submit `url` and run its job in this process, as a worker (not the index owner)."""
    job = ingestion_services.job_submit(url=url)
    assert tasks.run_next_job() == f"{job.pk}:completed", Job.objects.get(pk=job.pk).error_message
    return Job.objects.get(pk=job.pk)


def result(job: Job) -> dict[str, Any]:
    assert job.result is not None, job.status
    return job.result


def ingest_corpus(server: PageServer, slugs: tuple[str, ...] = SLUGS) -> dict[str, LibraryItem]:
    items = {}
    for slug in slugs:
        job = ingest(server.add(f"/{slug}", page(slug)))
        items[slug] = LibraryItem.objects.get(pk=result(job)["item_id"])
    return items

"""extract: fetch the page safely and pull out the article and its metadata."""

from __future__ import annotations

import httpx

from ingestion.extraction import extract_article
from ingestion.fetch import FetchError, fetch
from ingestion.pipeline import JobContext, StageFailure
from ingestion.politeness import host_slot


def _size(nbytes: int) -> str:
    if nbytes >= 1024 * 1024:
        return f"{nbytes / (1024 * 1024):.1f} MB"
    return f"{nbytes / 1024:.0f} KB"


def run(ctx: JobContext) -> None:
    url = ctx.job.canonical_url
    ctx.progress(5, f"Fetching {url}")
    last_reported = [0]

    def on_progress(nbytes: int, total: int | None) -> None:
        # Downloading is the first 70 % of this stage; report at most every 256 KB.
        if nbytes - last_reported[0] < 256 * 1024:
            return
        last_reported[0] = nbytes
        share = min(nbytes / total, 1.0) if total else 0.5
        ctx.progress(5 + int(share * 65), f"Downloaded {_size(nbytes)}")

    try:
        # Politeness: a cap on simultaneous fetches per host, across all workers.
        with host_slot(httpx.URL(url).host):
            page = fetch(url, on_progress=on_progress)
    except FetchError as exc:
        details = {"status_code": exc.status} if exc.status else {}
        raise StageFailure(
            exc.reason,
            exc.message,
            transient=exc.transient,
            retry_after=exc.retry_after,
            details=details,
        ) from exc
    ctx.progress(70, f"Downloaded {_size(page.nbytes)}", status_code=page.status)
    article = extract_article(page.text, page.url)
    if article is None or not article.text.strip():
        raise StageFailure("extract_empty", f"no article text found at {page.url}")
    ctx.state["page"] = page
    ctx.state["article"] = article
    ctx.progress(100, f"Extracted {article.word_count} words: {article.title[:80]}")

"""load: write the Markdown file, upsert the item and its chunks, index the vectors."""

from __future__ import annotations

from ingestion.pipeline import JobContext, StageFailure
from library import services as library_services


def run(ctx: JobContext) -> None:
    ctx.progress(10, "Writing Markdown file")
    try:
        stored = library_services.item_store(
            url=ctx.job.canonical_url,
            article=ctx.state["article"],
            analysis=ctx.state["analysis"],
            embedded=ctx.state["embedded"],
            extra_tags=ctx.options.get("tags", []),
        )
    except library_services.StorageFailed as exc:
        raise StageFailure("storage_failed", exc.message, transient=True) from exc
    ctx.state["item"] = stored.item
    ctx.state["result"] = stored.result
    ctx.progress(100, f"Stored {stored.item.file_path}")

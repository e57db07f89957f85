"""transform: screen and analyse the article, then chunk and embed it."""

from __future__ import annotations

from ingestion.pipeline import JobContext, StageFailure
from library import services as library_services


def run(ctx: JobContext) -> None:
    article = ctx.state["article"]
    page = ctx.state["page"]
    ctx.progress(5, "Screening and analysing content")
    try:
        analysis = library_services.analyze_article(
            url=ctx.job.canonical_url,
            article=article,
            skip_screening=bool(ctx.options.get("skip_screening")),
        )
    except library_services.AnalysisFailed as exc:
        raise StageFailure(exc.reason, exc.message) from exc
    ctx.state["analysis"] = analysis
    tags = ", ".join(analysis.tags)
    ctx.progress(50, f"Quality {analysis.quality_score:.1f}/10, {analysis.tier}; tags: {tags}")
    ctx.state["final_url"] = page.url
    embedded = library_services.embed_article(article.text)
    ctx.state["embedded"] = embedded
    ctx.progress(100, f"Embedded {len(embedded.chunks)} passages")

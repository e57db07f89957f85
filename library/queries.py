"""Reads of the library: filtered, sorted, paginated lists."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

from library.models import LibraryItem


def items_filtered(
    *,
    tier: str | None = None,
    tags: Sequence[str] = (),
    sort: str = "created_at",
    order: str = "desc",
    q: str = "",
) -> QuerySet[LibraryItem]:
    items = LibraryItem.objects.all()
    if tier:
        items = items.filter(tier=tier)
    for tag in tags:
        # One filter per tag: an item must carry all of them.
        items = items.filter(tags__name__iexact=tag)
    if q:
        items = items.filter(title__icontains=q) | items.filter(summary__icontains=q)
    prefix = "-" if order == "desc" else ""
    return items.order_by(f"{prefix}{sort}", f"{prefix}id").prefetch_related("tags").distinct()

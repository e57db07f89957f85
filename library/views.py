"""The library pages: the list with filters and search, an item, and its curation forms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

import markdown
import nh3
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from library import services
from library.access import can_curate, can_read_library, item_for_user
from library.forms import LibraryFilterForm, TagsForm, TierForm
from library.models import LibraryItem, Tag, Tier
from library.queries import items_filtered

ITEMS_PER_PAGE = 20
TAGS_IN_FILTER = 24
View = Callable[..., HttpResponse]


def find_items(
    *, q: str, tier: str | None, tags: Sequence[str], sort: str, order: str
) -> QuerySet[LibraryItem]:
    """The one place the list asks for items, so semantic search can take over here."""
    return items_filtered(tier=tier or None, tags=tags, sort=sort, order=order, q=q)


def render_article(body: str) -> SafeString:
    """Markdown to HTML, then sanitised: the article came from an untrusted page."""
    html = markdown.markdown(body, extensions=["extra", "sane_lists"], output_format="html")
    clean = nh3.clean(
        html,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - nh3 has just removed anything unsafe


def library_reader(view: View) -> View:
    """Let through whoever may read the library; send others to log in."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_read_library(request.user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def popular_tags() -> list[str]:
    counted = Tag.objects.annotate(n=Count("items")).filter(n__gt=0).order_by("-n", "name")
    return list(counted.values_list("name", flat=True)[:TAGS_IN_FILTER])


@library_reader
@require_GET
def library_index(request: HttpRequest) -> HttpResponse:
    form = LibraryFilterForm(request.GET, tag_choices=popular_tags())
    if form.is_valid():
        sort, order = form.sort_order()
        items = find_items(
            q=form.cleaned_data["q"].strip(),
            tier=form.cleaned_data["tier"],
            tags=form.cleaned_data["tag"],
            sort=sort,
            order=order,
        )
    else:
        items = LibraryItem.objects.none()
    page = Paginator(items, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "nav": "library",
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "filtered": any(request.GET.get(k) for k in ("q", "tier", "tag")),
    }
    return render(request, "library/index.html", context)


@library_reader
@require_GET
def item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    item = item_for_user(request.user, item_id)
    context: dict[str, Any] = {
        "nav": "library",
        "item": item,
        "article": render_article(item.body),
        "curator": can_curate(request.user),
    }
    if context["curator"]:
        context["tier_form"] = TierForm(initial={"tier": item.tier})
        context["tags_form"] = TagsForm(initial={"tags": ", ".join(item.tag_names())})
    return render(request, "library/item.html", context)


def _curated_item(request: HttpRequest, item_id: int) -> LibraryItem:
    item = item_for_user(request.user, item_id)
    if not can_curate(request.user):
        raise PermissionDenied("only curators may change items")
    return item


@login_required
@require_POST
def item_set_tier(request: HttpRequest, item_id: int) -> HttpResponse:
    item = _curated_item(request, item_id)
    form = TierForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the tiers.")
        return redirect("web:item", item_id=item.pk)
    tier = form.cleaned_data["tier"]
    try:
        services.item_set_tier(item, tier)
    except services.StorageFailed as exc:
        messages.error(request, f"Nothing changed: {exc.message}")
    else:
        label = Tier(tier).label
        messages.success(request, f"Moved to {label}; the file is now {item.file_path}.")
    return redirect("web:item", item_id=item.pk)


@login_required
@require_POST
def item_set_tags(request: HttpRequest, item_id: int) -> HttpResponse:
    item = _curated_item(request, item_id)
    form = TagsForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The tags could not be read.")
        return redirect("web:item", item_id=item.pk)
    try:
        services.item_set_tags(item, form.names())
    except (services.StorageFailed, OSError) as exc:
        # The file is written before the row, so a failed write changes nothing.
        messages.error(request, f"Nothing changed: could not write {item.file_path}: {exc}")
    else:
        messages.success(request, f"Tags saved: {', '.join(item.tag_names()) or 'none'}.")
    return redirect("web:item", item_id=item.pk)

"""The admin as curation desk: tiers, tags, bulk moves, re-analysis and tag merges.

Every change of a tier or of tags goes through `library.services`, so the
Markdown file moves (or is rewritten) with the row. A storage failure is shown
as an error and changes neither the row nor the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from library import services
from library.analysis.tags import clean_tag
from library.models import Chunk, LibraryItem, Tag, Tier
from library.reanalysis import reanalyze_item

# (lookup value, label, lower bound, upper bound) of the quality filter.
QUALITY_RANGES = [
    ("high", "7.5 – 10", 7.5, None),
    ("good", "5.5 – 7.5", 5.5, 7.5),
    ("fair", "3.5 – 5.5", 3.5, 5.5),
    ("low", "under 3.5", None, 3.5),
]


class QualityFilter(admin.SimpleListFilter):
    title = "quality score"
    parameter_name = "quality"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, label, _, _ in QUALITY_RANGES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for key, _, low, high in QUALITY_RANGES:
            if self.value() == key:
                if low is not None:
                    queryset = queryset.filter(quality_score__gte=low)
                if high is not None:
                    queryset = queryset.filter(quality_score__lt=high)
        return queryset


class ItemActionForm(ActionForm):
    tag = forms.CharField(
        required=False, label="Tag", help_text="For the add / remove tag actions."
    )


def _move_action(tier: str) -> Any:
    def action(modeladmin: Any, request: HttpRequest, queryset: QuerySet[LibraryItem]) -> None:
        moved = 0
        for item in queryset:
            try:
                services.item_set_tier(item, tier)
                moved += 1
            except services.StorageFailed as exc:
                modeladmin.message_user(request, f"Not moved: {exc.message}", messages.ERROR)
        modeladmin.message_user(request, f"Moved {moved} item(s) to {Tier(tier).label}.")

    action.__name__ = f"move_to_{tier.replace('-', '_')}"
    action.short_description = f"Move to {Tier(tier).label}"  # type: ignore[attr-defined]
    return action


def _retag(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[LibraryItem], *, add: bool
) -> None:
    name = clean_tag(request.POST.get("tag", ""))
    if not name:
        modeladmin.message_user(request, "Type the tag in the Tag field first.", messages.ERROR)
        return
    changed = 0
    for item in queryset.prefetch_related("tags"):
        names = item.tag_names()
        wanted = [*names, name] if add and name not in names else names
        if not add:
            wanted = [n for n in names if n != name]
        if wanted == names:
            continue
        try:
            services.item_set_tags(item, wanted)
            changed += 1
        except (services.StorageFailed, OSError) as exc:
            modeladmin.message_user(request, f"{item}: not changed: {exc}", messages.ERROR)
    verb = "Added" if add else "Removed"
    modeladmin.message_user(request, f"{verb} “{name}” on {changed} item(s).")


@admin.action(description="Add the tag in the Tag field")
def add_tag(modeladmin: Any, request: HttpRequest, queryset: QuerySet[LibraryItem]) -> None:
    _retag(modeladmin, request, queryset, add=True)


@admin.action(description="Remove the tag in the Tag field")
def remove_tag(modeladmin: Any, request: HttpRequest, queryset: QuerySet[LibraryItem]) -> None:
    _retag(modeladmin, request, queryset, add=False)


@admin.action(description="Re-run the analysis (summary, tags, score, tier)")
def reanalyze(modeladmin: Any, request: HttpRequest, queryset: QuerySet[LibraryItem]) -> None:
    done = moved = 0
    for item in queryset:
        try:
            outcome = reanalyze_item(item)
        except services.AnalysisFailed as exc:
            modeladmin.message_user(request, f"{item}: {exc.reason}: {exc.message}", messages.ERROR)
        except services.StorageFailed as exc:
            modeladmin.message_user(
                request, f"{item}: nothing changed: {exc.message}", messages.ERROR
            )
        else:
            done += 1
            moved += outcome.moved
    modeladmin.message_user(request, f"Re-analysed {done} item(s); {moved} changed tier.")


@admin.register(LibraryItem)
class LibraryItemAdmin(admin.ModelAdmin):
    list_display = ("title", "site", "tier", "quality_score", "tag_list", "created_at")
    list_editable = ("tier",)
    list_filter = ("tier", QualityFilter, "tags", "site", "analyzer")
    search_fields = ("title", "url", "summary", "site", "author", "tags__name")
    readonly_fields = ("file_path", "content_hash", "created_at", "updated_at")
    filter_horizontal = ("tags",)
    action_form = ItemActionForm
    actions = [*(_move_action(t) for t in Tier.values), add_tag, remove_tag, reanalyze]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LibraryItem]:
        return super().get_queryset(request).prefetch_related("tags")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # items come from ingestion, which writes their file and chunks

    def delete_model(self, request: HttpRequest, obj: LibraryItem) -> None:
        services.item_delete(obj)  # the file and the index entry go with the row

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[LibraryItem]) -> None:
        for item in queryset:
            services.item_delete(item)

    @admin.display(description="tags")
    def tag_list(self, obj: LibraryItem) -> str:
        return ", ".join(t.name for t in obj.tags.all())

    def save_model(self, request: HttpRequest, obj: LibraryItem, form: Any, change: bool) -> None:
        if change:
            # The row keeps its stored tier and path here; save_related moves the
            # file and the tier together, through the service.
            stored = LibraryItem.objects.values("tier", "file_path").get(pk=obj.pk)
            obj.tier, obj.file_path = stored["tier"], stored["file_path"]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        item = form.instance
        tier = form.cleaned_data.get("tier", item.tier)
        moves: list[tuple[int, str]] | None = getattr(request, "_librarian_tier_moves", None)
        if moves is not None:
            # The list's rows share one transaction: a file moved for one row would
            # stay moved if a later row failed and rolled the rows back. So the
            # list moves each item after that transaction, one by one.
            if tier != item.tier:
                moves.append((item.pk, tier))
            return
        # The change form: one storage step at the very end of the admin's
        # transaction; if it fails the transaction rolls back, the files stay put.
        if tier != item.tier:
            services.item_set_tier(item, tier)
            return
        try:
            services.item_rewrite_file(item)
        except OSError as exc:
            raise services.StorageFailed(f"could not write {item.file_path}: {exc}") from exc

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except services.StorageFailed as exc:
            self.message_user(request, f"Nothing changed: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        moves: list[tuple[int, str]] = []
        request._librarian_tier_moves = moves  # type: ignore[attr-defined]
        response = super().changelist_view(request, extra_context)
        for pk, tier in moves:
            item = LibraryItem.objects.get(pk=pk)
            try:
                services.item_set_tier(item, tier)
            except services.StorageFailed as exc:
                self.message_user(request, f"{item}: not moved: {exc.message}", messages.ERROR)
        return response


class MergeForm(forms.Form):
    into = forms.CharField(label="Merge into", max_length=100)

    def clean_into(self) -> str:
        name = clean_tag(self.cleaned_data["into"])
        if not name:
            raise forms.ValidationError("Give the tag a name with letters or digits.")
        return name


def merge_tags(tags: Sequence[Tag], into: str) -> tuple[int, int]:
    """Re-tag every item carrying one of `tags` with `into` instead; delete the old tags.

    Each item's file is rewritten with its row (services.item_set_tags). Returns
    (items re-tagged, tags deleted).
    """
    names = {t.name for t in tags}
    items = LibraryItem.objects.filter(tags__in=tags).distinct().prefetch_related("tags")
    changed = 0
    for item in items:
        current = item.tag_names()
        merged = list(dict.fromkeys(into if n in names else n for n in current))
        services.item_set_tags(item, merged)
        changed += 1
    with transaction.atomic():
        unused = (
            Tag.objects.filter(pk__in=[t.pk for t in tags])
            .exclude(name=into)
            .annotate(n=Count("items"))
            .filter(n=0)
            .values_list("pk", flat=True)
        )
        # Only tags no item carries any more go, so nothing is lost if a rewrite failed.
        doomed = list(unused)
        Tag.objects.filter(pk__in=doomed).delete()
    return changed, len(doomed)


@admin.action(description="Merge the selected tags into one")
def merge_selected(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Tag]
) -> HttpResponse | None:
    tags = list(queryset.annotate(n=Count("items")).order_by("-n", "name"))
    if len(tags) < 2:
        modeladmin.message_user(request, "Select at least two tags to merge.", messages.WARNING)
        return None
    form = MergeForm(
        request.POST if "into" in request.POST else None, initial={"into": tags[0].name}
    )
    if form.is_bound and form.is_valid():
        try:
            changed, deleted = merge_tags(tags, form.cleaned_data["into"])
        except (services.StorageFailed, OSError) as exc:
            modeladmin.message_user(request, f"Merge stopped: {exc}", messages.ERROR)
            return None
        modeladmin.message_user(
            request,
            f"Merged {len(tags)} tags into “{form.cleaned_data['into']}”: "
            f"{changed} item(s) re-tagged, {deleted} tag(s) deleted.",
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Merge tags",
        "opts": modeladmin.model._meta,
        "tags": tags,
        "form": form,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/library/tag/merge.html", context)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "item_count", "created_at")
    search_fields = ("name",)
    actions = [merge_selected]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(n=Count("items"))

    @admin.display(description="items", ordering="n")
    def item_count(self, obj: Any) -> int:
        return int(obj.n)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ("item", "ordinal", "embedder", "indexed_at")
    list_filter = ("embedder",)
    readonly_fields = ("item", "ordinal", "text", "embedder", "indexed_at")
    exclude = ("vector",)

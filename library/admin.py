"""The admin as curation desk: tiers, tags, bulk moves. Writes go through services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from library import services
from library.models import Chunk, LibraryItem, Tag, Tier


def _move_action(tier: str) -> Any:
    def action(modeladmin: Any, request: HttpRequest, queryset: QuerySet[LibraryItem]) -> None:
        moved = 0
        for item in queryset:
            try:
                services.item_set_tier(item, tier)
                moved += 1
            except services.StorageFailed as exc:
                modeladmin.message_user(request, exc.message, messages.ERROR)
        modeladmin.message_user(request, f"Moved {moved} item(s) to {tier}.")

    action.__name__ = f"move_to_{tier.replace('-', '_')}"
    action.short_description = f"Move to {tier}"  # type: ignore[attr-defined]
    return action


@admin.register(LibraryItem)
class LibraryItemAdmin(admin.ModelAdmin):
    list_display = ("title", "site", "tier", "quality_score", "word_count", "created_at")
    list_editable = ("tier",)
    list_filter = ("tier", "tags", "site", "analyzer")
    search_fields = ("title", "url", "summary", "site", "author")
    readonly_fields = ("file_path", "content_hash", "created_at", "updated_at")
    filter_horizontal = ("tags",)
    actions = [_move_action(t) for t in Tier.values]

    def save_model(self, request: HttpRequest, obj: LibraryItem, form: Any, change: bool) -> None:
        if change and "tier" in form.changed_data:
            # The file must move with the tier: the service moves it, then saves.
            new_tier = obj.tier
            obj.tier = LibraryItem.objects.values_list("tier", flat=True).get(pk=obj.pk)
            services.item_set_tier(obj, new_tier)
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        services.item_rewrite_file(form.instance)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ("item", "ordinal", "embedder", "indexed_at")
    list_filter = ("embedder",)
    readonly_fields = ("item", "ordinal", "text", "embedder", "indexed_at")
    exclude = ("vector",)

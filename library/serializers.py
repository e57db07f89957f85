"""The library API's shapes (API.md), and its query parameters."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from library.models import LibraryItem, Tier


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


class LibraryQuerySerializer(serializers.Serializer):
    tier = serializers.ChoiceField(choices=Tier.values, required=False)
    tag = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
    offset = serializers.IntegerField(min_value=0, default=0)
    sort = serializers.ChoiceField(
        choices=["created_at", "quality_score", "title"], default="created_at"
    )
    order = serializers.ChoiceField(choices=["asc", "desc"], default="desc")


ALLOWED_LIBRARY_PARAMS = {"tier", "tag", "limit", "offset", "sort", "order", "format"}


def query_data(params: Any, allowed: set[str]) -> dict[str, Any]:
    """QueryDict → plain dict, repeatable `tag` kept as a list; unknown names rejected."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise serializers.ValidationError({unknown[0]: ["unknown query parameter"]})
    data: dict[str, Any] = {k: params.get(k) for k in params if k not in ("tag", "format")}
    if "tag" in params:
        data["tag"] = params.getlist("tag")
    return data


def item_summary(item: LibraryItem) -> dict[str, Any]:
    return {
        "id": item.pk,
        "title": item.title,
        "url": item.url,
        "site": item.site,
        "author": item.author,
        "tier": item.tier,
        "quality_score": item.quality_score,
        "tags": [t.name for t in item.tags.all()],
        "summary": item.summary,
        "word_count": item.word_count,
        "reading_minutes": item.reading_minutes,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "file_path": item.file_path,
    }


def item_detail(item: LibraryItem) -> dict[str, Any]:
    return {
        **item_summary(item),
        "published": item.published or None,
        "language": item.language,
        "description": item.description,
        "quality_reasons": item.quality_reasons,
        "flags": item.flags,
        "content_hash": item.content_hash,
        "analyzer": item.analyzer,
        "analyzer_model": item.analyzer_model,
        "analyzer_version": item.analyzer_version,
        "prompt_version": item.prompt_version,
        "embedder": item.embedder,
        "body": item.body,
    }


class ItemSerializer(serializers.BaseSerializer):
    def to_representation(self, instance: LibraryItem) -> dict[str, Any]:
        return item_summary(instance)

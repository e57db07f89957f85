"""Library items, their tags and their embedded chunks."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Tier(models.TextChoices):
    A = "tier-a", "Tier A"
    B = "tier-b", "Tier B"
    C = "tier-c", "Tier C"
    D = "tier-d", "Tier D"


class Tag(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LibraryItem(models.Model):
    url = models.URLField(max_length=2048, unique=True)
    title = models.CharField(max_length=500)
    author = models.CharField(max_length=300, blank=True)
    site = models.CharField(max_length=300, blank=True)
    published = models.CharField(max_length=40, blank=True)
    language = models.CharField(max_length=20, blank=True)
    description = models.TextField(blank=True)
    summary = models.TextField(blank=True)
    tier = models.CharField(max_length=6, choices=Tier.choices, default=Tier.C, db_index=True)
    quality_score = models.FloatField(default=0.0, db_index=True)
    quality_reasons = models.JSONField(default=list, blank=True)
    flags = models.JSONField(default=list, blank=True)
    tags = models.ManyToManyField(Tag, related_name="items", blank=True)
    word_count = models.PositiveIntegerField(default=0)
    reading_minutes = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64, db_index=True)
    body = models.TextField(blank=True, help_text="The article as Markdown (also in the file).")
    file_path = models.CharField(max_length=500)
    analyzer = models.CharField(max_length=100, blank=True)
    analyzer_model = models.CharField(max_length=200, blank=True)
    analyzer_version = models.CharField(max_length=50, blank=True)
    prompt_version = models.CharField(max_length=50, blank=True)
    embedder = models.CharField(max_length=100, blank=True)
    embedder_version = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def tier_letter(self) -> str:
        return self.tier[-1].upper()

    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags.all()]


class Chunk(models.Model):
    """One embedded passage. The database holds the vectors; Qdrant is derived."""

    item = models.ForeignKey(LibraryItem, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    vector = models.BinaryField()
    embedder = models.CharField(max_length=100)
    indexed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["item_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["item", "ordinal"], name="chunk_unique_ordinal")
        ]

    def __str__(self) -> str:
        return f"{self.item_id}#{self.ordinal}"

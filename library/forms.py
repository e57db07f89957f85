"""Forms of the library pages: the filter bar, and the curator's tier and tag forms."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms

from library.models import Tier

# Sort choice → (field, order) as library.queries.items_filtered takes them.
SORTS: dict[str, tuple[str, str]] = {
    "newest": ("created_at", "desc"),
    "oldest": ("created_at", "asc"),
    "quality": ("quality_score", "desc"),
    "title": ("title", "asc"),
}
SORT_LABELS = [
    ("newest", "Newest first"),
    ("oldest", "Oldest first"),
    ("quality", "Best quality first"),
    ("title", "Title A–Z"),
]


class LibraryFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200)
    tier = forms.ChoiceField(label="Tier", required=False, choices=[("", "All tiers")])
    tag = forms.MultipleChoiceField(
        label="Tags", required=False, widget=forms.CheckboxSelectMultiple
    )
    sort = forms.ChoiceField(label="Sort", required=False, choices=SORT_LABELS)

    def __init__(self, *args: object, tag_choices: Sequence[str] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["tier"].choices = [("", "All tiers"), *Tier.choices]  # type: ignore[attr-defined]
        # Tags asked for in the query stay valid choices even when they are rare or
        # unknown, so a link from an item's tag always filters (perhaps to nothing).
        asked = self.data.getlist("tag") if hasattr(self.data, "getlist") else []
        names = list(dict.fromkeys([*tag_choices, *asked]))
        self.fields["tag"].choices = [(n, n) for n in names]  # type: ignore[attr-defined]

    def sort_order(self) -> tuple[str, str]:
        return SORTS.get(self.cleaned_data.get("sort") or "newest", SORTS["newest"])


class TierForm(forms.Form):
    tier = forms.ChoiceField(label="Tier", choices=Tier.choices)


class TagsForm(forms.Form):
    tags = forms.CharField(
        label="Tags (comma separated)",
        required=False,
        max_length=2000,
        help_text="Tags are cleaned: lowercase, singular, no duplicates.",
    )

    def names(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["tags"].split(",") if name.strip()]

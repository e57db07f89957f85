"""The ingest page's form: one URL or many pasted a line each, a priority, options."""

from __future__ import annotations

from typing import Any

from django import forms

MAX_URLS = 100
PRIORITIES = [("high", "High"), ("normal", "Normal"), ("low", "Low")]


class IngestForm(forms.Form):
    url = forms.CharField(
        label="URL",
        required=False,
        max_length=2048,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/article"}),
    )
    urls = forms.CharField(
        label="Or paste many URLs, one a line",
        required=False,
        max_length=MAX_URLS * 2100,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
    )
    priority = forms.ChoiceField(choices=PRIORITIES, initial="normal")
    force_refresh = forms.BooleanField(
        label="Force refresh (process again even if it is in the library)", required=False
    )
    skip_screening = forms.BooleanField(
        label="Skip screening (keep short or odd pages)", required=False
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        urls = self.url_list()
        if not urls:
            raise forms.ValidationError("Enter a URL, or paste some URLs, one a line.")
        if len(urls) > MAX_URLS:
            raise forms.ValidationError(f"At most {MAX_URLS} URLs at once ({len(urls)} given).")
        return data

    def url_list(self) -> list[str]:
        """The URLs in the order given, blank lines and repeats dropped."""
        raw = [self.data.get("url", "")] + str(self.data.get("urls", "")).splitlines()
        seen: dict[str, None] = {}
        for line in raw:
            url = str(line).strip()
            if url:
                seen.setdefault(url, None)
        return list(seen)

    def options(self) -> dict[str, bool]:
        return {
            "force_refresh": bool(self.cleaned_data.get("force_refresh")),
            "skip_screening": bool(self.cleaned_data.get("skip_screening")),
        }


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[
            ("", "All"),
            ("active", "In progress"),
            ("queued", "Queued"),
            ("processing", "Processing"),
            ("completed", "Completed"),
            ("failed", "Failed"),
            ("cancelled", "Cancelled"),
        ],
    )

"""The library as plain Markdown files: YAML front matter + body, one folder per tier.

All access goes through Django's storage API, so the same code writes to local
disk or to S3/MinIO.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.text import slugify

LIBRARY_ROOT = "library"


def slug_for(title: str, url: str) -> str:
    base = slugify(title)[:80].strip("-") or "article"
    return base


def path_for(tier: str, slug: str) -> str:
    return f"{LIBRARY_ROOT}/{tier}/{slug}.md"


def url_suffix(url: str) -> str:
    return hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:8]


def render(meta: dict[str, Any], body: str) -> str:
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body.strip()}\n"


def parse(text: str) -> tuple[dict[str, Any], str]:
    """Split a file into its front matter and body."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end == -1:
        return {}, text
    meta = yaml.safe_load(text[4 : end + 1]) or {}
    if not isinstance(meta, dict):
        meta = {}
    return meta, text[end + 5 :].lstrip("\n")


def write(path: str, content: str) -> None:
    """Write (or overwrite) one file at exactly `path`, in one step on every backend."""
    saved = default_storage.save(path, ContentFile(content.encode("utf-8")))
    if saved != path:
        # A storage that will not overwrite picked another name: keep ours exact.
        default_storage.delete(saved)
        raise OSError(f"storage could not write {path}")


def read(path: str) -> str:
    with default_storage.open(path, "rb") as handle:
        data: bytes = handle.read()
    return data.decode("utf-8")


def delete(path: str) -> None:
    # Both local and S3 storage ignore deleting a missing file.
    if path:
        default_storage.delete(path)


def exists(path: str) -> bool:
    return bool(default_storage.exists(path))


def listdir_recursive(root: str = LIBRARY_ROOT) -> list[str]:
    """Every file under `root` (storage paths)."""
    out: list[str] = []
    try:
        dirs, files = default_storage.listdir(root)
    except FileNotFoundError:
        return out
    out.extend(f"{root}/{name}" for name in files)
    for sub in dirs:
        out.extend(listdir_recursive(f"{root}/{sub}"))
    return out

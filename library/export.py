"""The portable library: the Markdown tree read back from storage, for export and rebuild.

Everything here goes through `library.files` (Django's storage API), so it
works the same on local disk and on S3/MinIO.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

import yaml

from library import files

Progress = Callable[[], object]


class TextSink(Protocol):
    def write(self, text: str, /) -> object: ...


@dataclass(frozen=True)
class LibraryFile:
    path: str
    meta: dict[str, Any]
    body: str


class UnreadableFile(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def library_paths() -> list[str]:
    """Every Markdown file of the library, in a stable order."""
    return sorted(p for p in files.listdir_recursive(files.LIBRARY_ROOT) if p.endswith(".md"))


def read_library_file(path: str) -> LibraryFile:
    try:
        meta, body = files.parse(files.read(path))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UnreadableFile(path, f"{type(exc).__name__}: {exc}") from exc
    return LibraryFile(path=path, meta=meta, body=body)


def json_safe(value: Any) -> Any:
    """Front matter as JSON: YAML may hand back dates for hand-edited files."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def write_zip(out: IO[bytes], paths: Iterable[str], progress: Progress | None = None) -> int:
    """The tree as a zip with the same layout (`library/tier-x/<slug>.md`)."""
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            archive.writestr(path, files.read(path))
            count += 1
            if progress is not None:
                progress()
    return count


def jsonl_records(paths: Iterable[str]) -> Iterator[dict[str, Any]]:
    for path in paths:
        found = read_library_file(path)
        yield {"path": found.path, "front_matter": json_safe(found.meta), "body": found.body}


def write_jsonl(out: TextSink, paths: Iterable[str], progress: Progress | None = None) -> int:
    """One JSON object per file: its path, its front matter and its body."""
    count = 0
    for record in jsonl_records(paths):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
        if progress is not None:
            progress()
    return count

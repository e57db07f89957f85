"""manage.py export_library: the Markdown tree as a zip, or as JSON lines, from storage."""

from __future__ import annotations

import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from library.export import Progress, UnreadableFile, library_paths, write_jsonl, write_zip

DEFAULT_OUT = {"zip": "library-export.zip", "jsonl": "library-export.jsonl"}


class Command(BaseCommand):
    help = (
        "Export every Markdown file of the library (local disk or S3): a zip with the "
        "library/tier-x/<slug>.md layout, or JSON lines of path, front matter and body."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--format", choices=sorted(DEFAULT_OUT), default="zip")
        parser.add_argument(
            "--out",
            help="file to write (default library-export.zip / .jsonl); '-' writes JSON lines "
            "to standard output",
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        fmt: str = opts["format"]
        out: str = opts["out"] or DEFAULT_OUT[fmt]
        if out == "-" and fmt != "jsonl":
            raise CommandError("only --format jsonl can be written to standard output")
        try:
            paths = library_paths()
        except Exception as exc:
            raise CommandError(f"could not list the library: {exc}") from exc
        show = not opts["no_progress"] and out != "-"
        with tqdm(total=len(paths), desc="exporting", unit="file", disable=not show) as bar:
            try:
                if out == "-":
                    count = write_jsonl(self.stdout, paths)
                else:
                    count = self._write_file(Path(out), fmt, paths, bar.update)
            except (UnreadableFile, OSError) as exc:
                raise CommandError(f"export failed: {exc}") from exc
        if out != "-":
            self.stderr.write(f"exported {count} file(s) to {out}")

    def _write_file(self, out: Path, fmt: str, paths: list[str], step: Progress) -> int:
        # Written beside the target and renamed at the end, so a failed export
        # never leaves a truncated file where the last good one was.
        partial = out.with_name(out.name + ".partial")
        try:
            if fmt == "zip":
                with partial.open("wb") as handle:
                    count = write_zip(handle, paths, step)
            else:
                with partial.open("w", encoding="utf-8") as text:
                    count = write_jsonl(text, paths, step)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        return count

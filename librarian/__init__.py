"""The Librarian: turns URLs into a curated, searchable library of Markdown files."""

__version__ = "1.0.0"

"""The settings, `.env.example` and docs/configuration.md name the same variables.

Every variable librarian/settings.py reads is listed in `.env.example` and
documented; everything listed or documented is read by some part of the
project (settings, or a command such as `serve` and `ensure_admin`).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "librarian" / "settings.py"
ENV_EXAMPLE = ROOT / ".env.example"
CONFIGURATION = ROOT / "docs" / "configuration.md"
APP_DIRS = ("librarian", "ingestion", "library")
# Read by Python, Django or the test runner rather than by the Librarian.
NOT_OURS = frozenset({"DJANGO_SETTINGS_MODULE"})
# docs/configuration.md: variables below this heading are the compose file's own.
COMPOSE_ONLY_HEADING = "## Variables of docker-compose.yml only"

_ENV_HELPER = re.compile(r"\benv(?:str|bool|int|float|list)\(\s*\"([A-Z][A-Z0-9_]*)\"")
_OS_ENVIRON = re.compile(r"os\.environ(?:\.get\(\s*|\[\s*)\"([A-Z][A-Z0-9_]*)\"")
_DOC_ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", re.MULTILINE)


def settings_env_names() -> set[str]:
    """Every variable librarian/settings.py reads through the typed env helpers."""
    return set(_ENV_HELPER.findall(SETTINGS.read_text()))


def project_env_names() -> set[str]:
    """Every variable any module of the application reads."""
    names: set[str] = set()
    sources = [ROOT / "manage.py", *(p for d in APP_DIRS for p in (ROOT / d).rglob("*.py"))]
    for source in sources:
        text = source.read_text()
        names |= set(_ENV_HELPER.findall(text)) | set(_OS_ENVIRON.findall(text))
    return names - NOT_OURS


def env_example_entries() -> list[tuple[str, str]]:
    entries = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            entries.append((name.strip(), value))
    return entries


def env_example_names() -> set[str]:
    return {name for name, _ in env_example_entries()}


def documented_names() -> tuple[set[str], set[str]]:
    """(the settings' variables, the compose file's own) as docs/configuration.md lists them."""
    text = CONFIGURATION.read_text()
    settings_part, _, compose_part = text.partition(COMPOSE_ONLY_HEADING)
    return set(_DOC_ROW.findall(settings_part)), set(_DOC_ROW.findall(compose_part))


def test_it_lists_every_variable_the_settings_read_in_env_example():
    missing = settings_env_names() - env_example_names()
    assert not missing, f"add to .env.example (A–Z): {sorted(missing)}"


def test_it_lists_only_variables_the_project_reads_in_env_example():
    unread = env_example_names() - project_env_names()
    assert not unread, f".env.example names variables nothing reads: {sorted(unread)}"


def test_it_keeps_env_example_in_alphabetical_order_without_repeats():
    names = [name for name, _ in env_example_entries()]
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_it_documents_every_variable_of_env_example():
    documented, _ = documented_names()
    missing = env_example_names() - documented
    assert not missing, f"document in docs/configuration.md: {sorted(missing)}"


def test_it_documents_only_variables_of_env_example():
    documented, _ = documented_names()
    extra = documented - env_example_names()
    assert not extra, f"docs/configuration.md documents unknown variables: {sorted(extra)}"


def test_it_keeps_the_compose_only_variables_apart_from_the_settings():
    documented, compose_only = documented_names()
    assert compose_only, f"docs/configuration.md lacks the section {COMPOSE_ONLY_HEADING!r}"
    assert not compose_only & (documented | project_env_names())


def test_it_finds_variables_read_over_several_lines():
    # A long default pushes the name onto its own line; the scan must still see it.
    assert "LIBRARIAN_FETCH_USER_AGENT" in settings_env_names()
    assert {"HOST", "PORT", "LIBRARIAN_ADMIN_USER"} <= project_env_names()

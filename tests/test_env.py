"""Settings from the environment: typed, with safe defaults, loud on bad values."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from librarian.env import envbool, envfloat, envint, envlist, envstr


def test_it_reads_booleans_strictly(monkeypatch):
    for raw, expected in [("1", True), ("yes", True), ("off", False), ("", False)]:
        monkeypatch.setenv("LIBRARIAN_X", raw)
        assert envbool("LIBRARIAN_X") is expected
    monkeypatch.setenv("LIBRARIAN_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="LIBRARIAN_X must be a boolean"):
        envbool("LIBRARIAN_X")
    monkeypatch.delenv("LIBRARIAN_X")
    assert envbool("LIBRARIAN_X", True) is True


def test_it_reads_numbers_and_names_the_bad_one(monkeypatch):
    monkeypatch.setenv("LIBRARIAN_N", "12")
    assert envint("LIBRARIAN_N", 3) == 12
    assert envfloat("LIBRARIAN_N", 0.5) == 12.0
    monkeypatch.setenv("LIBRARIAN_N", "")
    assert envint("LIBRARIAN_N", 3) == 3
    assert envfloat("LIBRARIAN_N", 0.5) == 0.5
    monkeypatch.setenv("LIBRARIAN_N", "twelve")
    with pytest.raises(ImproperlyConfigured, match="LIBRARIAN_N must be an integer"):
        envint("LIBRARIAN_N", 3)
    with pytest.raises(ImproperlyConfigured, match="LIBRARIAN_N must be a number"):
        envfloat("LIBRARIAN_N", 0.5)


def test_it_reads_lists_and_strings(monkeypatch):
    monkeypatch.setenv("LIBRARIAN_L", " a, b ,,c ")
    assert envlist("LIBRARIAN_L") == ["a", "b", "c"]
    monkeypatch.delenv("LIBRARIAN_L")
    assert envlist("LIBRARIAN_L", "x") == ["x"]
    assert envstr("LIBRARIAN_L", "d") == "d"

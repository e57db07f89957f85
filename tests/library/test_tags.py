from __future__ import annotations

from pathlib import Path

from library.analysis.tags import load_vocabulary, normalise_tags


def _tags(raw: list[str], max_tags: int = 8, vocabulary: dict[str, str] | None = None) -> list[str]:
    return normalise_tags(raw, vocabulary=vocabulary, max_tags=max_tags)


def test_it_lowercases_and_collapses_whitespace_and_punctuation() -> None:
    assert _tags(["  Machine   Learning!! ", "“Django”", "Node.js", "C++", "open_source"]) == [
        "machine learning",
        "django",
        "node.js",
        "c++",
        "open source",
    ]


def test_it_merges_singular_and_plural_keeping_the_more_frequent_form() -> None:
    raw = ["neural network", "neural networks", "Neural Networks", "databases", "database"]

    assert _tags(raw) == ["neural networks", "databases"]


def test_it_merges_ies_and_es_plurals() -> None:
    assert _tags(["libraries", "library", "boxes", "box", "classes", "class"]) == [
        "libraries",
        "boxes",
        "classes",
    ]


def test_it_does_not_strip_an_s_that_is_not_a_plural() -> None:
    assert _tags(["analysis", "status", "kubernetes"]) == ["analysis", "status", "kubernetes"]


def test_it_merges_hyphenated_and_spaced_spellings() -> None:
    assert _tags(["write-ahead log", "write ahead logs"]) == ["write-ahead log"]


def test_it_drops_stopword_only_numeric_and_overlong_tags() -> None:
    raw = ["the", "of the", "2024", "3.5", "10%", "x", "", "one two three four five", "sqlite"]

    assert _tags(raw) == ["sqlite"]


def test_it_keeps_the_order_of_relevance_and_caps_the_count() -> None:
    assert _tags(["python", "django", "web", "orm"], max_tags=2) == ["python", "django"]


def test_it_maps_tags_and_synonyms_onto_the_vocabulary() -> None:
    vocabulary = load_vocabulary("machine learning: ml, deep learning; databases")

    raw = ["ML", "Deep-Learning models", "Database", "cooking", "machine learning"]

    assert _tags(raw, vocabulary=vocabulary) == ["machine learning", "databases"]


def test_it_reads_a_vocabulary_file_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "tags.txt"
    path.write_text(
        "# curated topics\nmachine learning: ml, deep learning\n\nPython  # the language\n",
        encoding="utf-8",
    )

    vocabulary = load_vocabulary(str(path))

    assert _tags(["python", "ml", "rust"], vocabulary=vocabulary) == ["python", "machine learning"]


def test_it_reads_an_inline_comma_separated_vocabulary() -> None:
    vocabulary = load_vocabulary("Python, Databases, web development")

    assert set(vocabulary.values()) == {"python", "databases", "web development"}
    assert _tags(["database", "rust"], vocabulary=vocabulary) == ["databases"]


def test_it_treats_an_empty_vocabulary_setting_as_none() -> None:
    assert load_vocabulary("") == {}
    assert load_vocabulary("   ") == {}

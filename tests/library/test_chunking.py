"""Chunking an article into overlapping passages."""

from __future__ import annotations

import pytest

from library.chunking import chunk_text


def numbered_paragraph(tag: str, words: int, sentence_length: int = 12) -> str:
    """`words` distinct words, a full stop after every `sentence_length` of them."""
    return " ".join(
        f"{tag}{i}" + ("." if i % sentence_length == sentence_length - 1 else "")
        for i in range(words)
    )


def new_words(chunks: list[str], overlap: int) -> list[str]:
    """The words of all chunks with each chunk's overlap taken off again."""
    words: list[str] = []
    previous = 0
    for chunk in chunks:
        chunk_words = chunk.split()
        words.extend(chunk_words[min(overlap, previous) if words else 0 :])
        previous = len(chunk_words)
    return words


def test_it_keeps_a_short_text_in_one_chunk() -> None:
    assert chunk_text("Bees pollinate  apple\ntrees.") == ["Bees pollinate apple trees."]


def test_it_returns_nothing_for_text_without_words() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\n \t \n") == []


def test_it_packs_short_paragraphs_together() -> None:
    text = "First paragraph here.\n\nSecond one.\n   \nThird and last."

    assert chunk_text(text) == ["First paragraph here.\n\nSecond one.\n\nThird and last."]


def test_it_never_exceeds_max_words_nor_makes_empty_chunks() -> None:
    text = "\n\n".join(
        numbered_paragraph(f"p{n}w", size) for n, size in enumerate([5, 300, 40, 170, 1, 90, 600])
    )

    chunks = chunk_text(text)

    assert len(chunks) > 5
    assert all(0 < len(chunk.split()) <= 180 for chunk in chunks)


def test_it_loses_no_word_and_repeats_none_beyond_the_overlap() -> None:
    paragraphs = [numbered_paragraph(f"p{n}w", size) for n, size in enumerate([30, 250, 75, 400])]
    text = "\n\n".join(paragraphs)

    chunks = chunk_text(text, max_words=100, overlap_words=20)

    assert new_words(chunks, 20) == text.split()


def test_it_starts_each_chunk_with_the_tail_of_the_previous_one() -> None:
    text = numbered_paragraph("w", 500)

    chunks = chunk_text(text)

    for previous, current in zip(chunks, chunks[1:], strict=False):
        assert current.split()[:40] == previous.split()[-40:]


def test_it_splits_a_long_paragraph_at_sentence_ends() -> None:
    text = numbered_paragraph("w", 400, sentence_length=10)

    chunks = chunk_text(text, overlap_words=0)

    assert len(chunks) >= 3
    assert all(chunk.endswith(".") for chunk in chunks)


def test_it_cuts_a_sentence_that_never_ends() -> None:
    text = " ".join(f"w{i}" for i in range(1000))

    chunks = chunk_text(text, max_words=100, overlap_words=10)

    assert all(len(chunk.split()) <= 100 for chunk in chunks)
    assert new_words(chunks, 10) == text.split()


def test_it_keeps_paragraph_breaks_inside_a_chunk_and_its_overlap() -> None:
    first, second, third = (numbered_paragraph(f"p{n}w", 70) for n in range(3))

    chunks = chunk_text("\n\n".join([first, second, third]), max_words=100, overlap_words=20)

    assert chunks[0] == first
    assert chunks[1] == " ".join(first.split()[-20:]) + "\n\n" + second


def test_it_works_without_overlap() -> None:
    text = numbered_paragraph("w", 450)

    chunks = chunk_text(text, max_words=150, overlap_words=0)

    assert [len(chunk.split()) for chunk in chunks] == [144, 144, 144, 18]
    assert " ".join(chunks).split() == text.split()


def test_it_gives_the_same_chunks_every_time() -> None:
    text = "\n\n".join(numbered_paragraph(f"p{n}w", 50 + 37 * n) for n in range(8))

    assert chunk_text(text) == chunk_text(text)


def test_it_splits_sentences_after_closing_quotes() -> None:
    quoted = " ".join(f'He said "word{i}." Then' for i in range(60))

    chunks = chunk_text(quoted, max_words=50, overlap_words=0)

    assert all(chunk.endswith('."') or chunk == chunks[-1] for chunk in chunks)


@pytest.mark.parametrize(("max_words", "overlap_words"), [(0, 0), (10, 10), (10, -1)])
def test_it_refuses_impossible_sizes(max_words: int, overlap_words: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("some text", max_words=max_words, overlap_words=overlap_words)

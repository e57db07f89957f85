"""Split an article's text into overlapping passages for embedding.

Paragraphs (separated by blank lines) are packed into chunks of at most `max_words`
words; a paragraph too long for one chunk is split by sentences, and a sentence
too long by words. Each chunk after the first starts with the last `overlap_words`
words of the one before, so a passage cut at a boundary is still found whole. The
overlap counts towards `max_words`, so every chunk fits the embedder's window
(180 English words is about 240 of MiniLM's 256 tokens).

Whitespace inside a paragraph is collapsed to single spaces; paragraphs are joined
by a blank line. The same text always gives the same chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# A sentence ends at . ! ? … (optionally followed by a closing quote or bracket)
# and whitespace, or at CJK full stops, which take no space after them.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|(?<=[。！？])\s*")


@dataclass(frozen=True)
class _Piece:
    paragraph: int  # pieces of one paragraph rejoin with spaces, others with blank lines
    words: tuple[str, ...]


def chunk_text(text: str, *, max_words: int = 180, overlap_words: int = 40) -> list[str]:
    """Return the chunks of `text`, none empty; [] for text with no words."""
    if max_words < 1:
        raise ValueError("max_words must be at least 1.")
    if not 0 <= overlap_words < max_words:
        raise ValueError("overlap_words must be at least 0 and less than max_words.")

    # Every chunk but the first carries the overlap, so new material gets the rest.
    room = max_words - overlap_words
    chunks: list[list[_Piece]] = []
    current: list[_Piece] = []
    size = 0
    for piece in _pieces(text, room):
        budget = max_words if not chunks else room
        if current and size + len(piece.words) > budget:
            chunks.append(current)
            current, size = [], 0
        current.append(piece)
        size += len(piece.words)
    if current:
        chunks.append(current)

    rendered = []
    for index, pieces in enumerate(chunks):
        if index and overlap_words:
            pieces = _tail(chunks[index - 1], overlap_words) + pieces
        rendered.append(_render(pieces))
    return rendered


def _pieces(text: str, limit: int) -> list[_Piece]:
    """Paragraphs of at most `limit` words; longer ones cut by sentences, then words."""
    pieces = []
    for number, paragraph in enumerate(_PARAGRAPH_BREAK.split(text)):
        words = paragraph.split()
        if not words:
            continue
        if len(words) <= limit:
            pieces.append(_Piece(number, tuple(words)))
            continue
        run: list[str] = []
        for sentence in _SENTENCE_END.split(paragraph):
            sentence_words = sentence.split()
            if len(run) + len(sentence_words) > limit and run:
                pieces.append(_Piece(number, tuple(run)))
                run = []
            # A sentence longer than the limit is cut into word windows.
            while len(sentence_words) > limit:
                pieces.append(_Piece(number, tuple(sentence_words[:limit])))
                sentence_words = sentence_words[limit:]
            run.extend(sentence_words)
        if run:
            pieces.append(_Piece(number, tuple(run)))
    return pieces


def _tail(pieces: list[_Piece], count: int) -> list[_Piece]:
    """The last `count` words of a chunk, keeping which paragraph each came from."""
    tail: list[_Piece] = []
    for piece in reversed(pieces):
        if count <= 0:
            break
        taken = piece.words[-count:]
        tail.insert(0, _Piece(piece.paragraph, taken))
        count -= len(taken)
    return tail


def _render(pieces: list[_Piece]) -> str:
    paragraphs: list[list[str]] = []
    previous = None
    for piece in pieces:
        if piece.paragraph != previous:
            paragraphs.append([])
            previous = piece.paragraph
        paragraphs[-1].extend(piece.words)
    return "\n\n".join(" ".join(words) for words in paragraphs)

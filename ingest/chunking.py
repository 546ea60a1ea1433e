"""Split page text into overlapping chunks that end at sentence boundaries.

Sentences: paragraphs (blank lines) first; inside a paragraph, Kiwi's sentence splitter when it holds
Hangul (Korean sentence ends such as "~다." or "~요" without a period are not regex-friendly), and a
punctuation rule otherwise. Chunks pack whole sentences up to `size` characters; the next chunk
starts with the trailing sentences of the previous one that fit in `overlap` characters. Only a
sentence longer than `size` is cut, at the last whitespace before the limit.
Every chunk is an exact slice: `page_text[start:end] == chunk.text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.hangul import HANGUL, kiwi

_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*$)", re.DOTALL)
_LATIN_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9\u0080-\uffff])")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int
    end: int


def _latin_sentences(text: str, offset: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _LATIN_SENTENCE_END.finditer(text):
        spans.append((offset + start, offset + match.start()))
        start = match.end()
    spans.append((offset + start, offset + len(text.rstrip())))
    return [(a, b) for a, b in spans if b > a]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of `text`, in order, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    for para in _PARAGRAPH.finditer(text):
        body, offset = para.group(), para.start()
        if HANGUL.search(body):
            spans += [(offset + s.start, offset + s.end) for s in kiwi().split_into_sents(body)]
        else:
            spans += _latin_sentences(body, offset)
    return spans


def _cut_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Cut one over-long sentence into pieces of at most `size`, at whitespace where possible."""
    pieces = []
    while end - start > size:
        window = text[start : start + size]
        cut = max(window.rfind(" "), window.rfind("\n"))
        stop = start + cut if cut > size // 2 else start + size
        pieces.append((start, stop))
        start = stop
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def chunk_text(text: str, size: int = 700, overlap: int = 120) -> list[Chunk]:
    """Chunk `text` into pieces of at most `size` characters sharing up to `overlap` characters."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"chunk size {size} / overlap {overlap}: need size > 0 and 0 <= overlap < size")
    units: list[tuple[int, int]] = []
    for start, end in sentence_spans(text):
        units += _cut_long(text, start, end, size)

    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j = i + 1
        while j < len(units) and units[j][1] - units[i][0] <= size:
            j += 1
        start, end = units[i][0], units[j - 1][1]
        chunks.append(Chunk(text[start:end], start, end))
        if j == len(units):
            break
        # step back over whole trailing sentences that fit in the overlap and still leave room
        # for the next sentence (else the overlap alone would make a redundant chunk)
        k = j
        while k - 1 > i and end - units[k - 1][0] <= overlap and units[j][1] - units[k - 1][0] <= size:
            k -= 1
        i = k
    return chunks

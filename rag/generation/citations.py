"""Check the answer's citations [n] against the passages it was given, as the answer streams.

A small model sometimes cites a document that was never shown ("[5]" with four passages). Such a
number is removed before the reader sees it and reported; `[1, 7]` keeps `[1]`. A bracket is held
back only while it could still be a citation, so streaming stays immediate.
"""

from __future__ import annotations

import re

_CITATION = re.compile(r"\[(\s*\d+\s*(?:[,，、]\s*\d+\s*)*)\]")
_OPEN = re.compile(r"\[[\d\s,，、]*$")  # an unfinished bracket that may still become a citation


class CitationFilter:
    """Feed streamed text in, get checked text out; `removed` lists the invalid numbers."""

    def __init__(self, passages: int) -> None:
        self.valid = range(1, passages + 1)
        self.removed: list[int] = []
        self.cited: list[int] = []
        self._held = ""

    def _check(self, match: re.Match) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        good = [n for n in numbers if n in self.valid]
        self.removed += [n for n in numbers if n not in self.valid]
        self.cited += [n for n in good if n not in self.cited]
        return f"[{', '.join(map(str, good))}]" if good else ""

    def feed(self, piece: str) -> str:
        text = _CITATION.sub(self._check, self._held + piece)
        tail = _OPEN.search(text)
        if tail and len(text) - tail.start() <= 24:
            self._held, text = text[tail.start() :], text[: tail.start()]
        else:
            self._held = ""
        return text

    def finish(self) -> str:
        held, self._held = self._held, ""
        return _CITATION.sub(self._check, held)


def check_citations(text: str, passages: int) -> tuple[str, list[int]]:
    """The whole-text form: `text` with invalid citations removed, and the numbers removed."""
    checker = CitationFilter(passages)
    out = checker.feed(text) + checker.finish()
    return re.sub(r"[ \t]+([.,。])", r"\1", out), checker.removed

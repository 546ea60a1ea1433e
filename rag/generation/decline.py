"""Declines in the question's language, and whether an answer is one.

The model is told to reply with `NOT_FOUND` when the documents do not hold the answer; it often
writes the English sentence to a Korean question (measured: q18 and q26 of docs_corpus, a warm
server's decline to a Korean question), and with nothing relevant retrieved it has copied the
answer of the system prompt's worked example instead ("분실한 카드는 1,000원에 재발급됩니다 [2]."
to a question about a café's prices). `DeclineFilter` sits at the end of the stream: while what
has come so far may still be a decline or a copied example it holds the text back; a match is
written as the decline in the question's language, without the citation or period that followed
it, and the rest passes through. `declined` says the answer began with one (`abstained`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NOT_FOUND = {
    "ko": "제공된 문서에는 이 질문에 대한 정보가 없습니다.",
    "en": "The documents do not contain the answer.",
}
_TAIL = re.compile(r"[\s.]*(?:\[\d+\][\s.]*)*")  # what may follow a matched sentence: citations, periods
_OPEN_TAIL = re.compile(r"[\s.]*(?:\[\d*\]?[\s.]*)*")  # such a tail, perhaps still growing


def _core(sentence: str) -> str:
    """A sentence without its citations and final period: how a model may end it varies."""
    return re.sub(r"(\s*\[\d+\])+", "", sentence).rstrip(" .")


class DeclineFilter:
    def __init__(self, lang: str, copied: Iterable[str] = ()) -> None:
        """`copied`: answers of the prompt's worked examples, which are no answer here."""
        self.lang = lang
        self.declined = False
        self._cores = [_core(phrase) for phrase in NOT_FOUND.values()] + [_core(text) for text in copied]
        self._held = ""
        self._state = "start"  # start: may still match; tail: after a match; pass: through

    def feed(self, text: str) -> str:
        if self._state == "pass":
            return text
        self._held += text
        if self._state == "tail":
            return self._release_tail()
        start = self._held.lstrip()
        for core in self._cores:
            if start.startswith(core):
                self.declined, self._state = True, "tail"
                self._held = start[len(core) :]
                return NOT_FOUND[self.lang] + self._release_tail()
        if any(core.startswith(start) for core in self._cores):
            return ""  # may still become a decline
        self._state = "pass"
        out, self._held = self._held, ""
        return out

    def _release_tail(self) -> str:
        """Drop the citations and period right after a match; hold while the tail may grow."""
        if _OPEN_TAIL.fullmatch(self._held):
            return ""
        rest = self._held[_TAIL.match(self._held).end() :]
        self._state, self._held = "pass", ""
        return f" {rest}" if rest else ""

    def finish(self) -> str:
        """What is still held: an answer shorter than a decline's first words (a tail is dropped)."""
        out = "" if self._state == "tail" else self._held
        self._held, self._state = "", "pass"
        return out

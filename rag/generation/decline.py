"""Declines in the question's language, and whether an answer is one.

The model is told to reply with `NOT_FOUND` when the documents do not hold the answer; it often
writes the English sentence to a Korean question (measured: q18 and q26 of docs_corpus, a warm
server's decline to a Korean question). `DeclineFilter` sits at the end of the stream: while what has
come so far may still be a decline it holds the text back, then writes the decline in the question's
language and passes the rest through; `declined` says the answer began with one (`abstained`).
"""

from __future__ import annotations

NOT_FOUND = {
    "ko": "제공된 문서에는 이 질문에 대한 정보가 없습니다.",
    "en": "The documents do not contain the answer.",
}
_CORES = {lang: phrase.rstrip(".") for lang, phrase in NOT_FOUND.items()}  # a decline may lack its period


class DeclineFilter:
    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.declined = False
        self._held = ""
        self._passing = False
        self._period_due = False  # a decline matched before its period came: drop that period

    def feed(self, text: str) -> str:
        if self._passing:
            if self._period_due and text:
                self._period_due = False
                text = text.removeprefix(".")
            return text
        self._held += text
        start = self._held.lstrip()
        for core in _CORES.values():
            if start.startswith(core):
                self.declined, self._passing = True, True
                rest = start[len(core) :]
                self._period_due = not rest
                self._held = ""
                return NOT_FOUND[self.lang] + rest.removeprefix(".")
        if any(core.startswith(start) for core in _CORES.values()):
            return ""  # may still become a decline
        self._passing = True
        out, self._held = self._held, ""
        return out

    def finish(self) -> str:
        """What is still held (an answer shorter than a decline's first words)."""
        out, self._held = self._held, ""
        self._passing = True
        return out

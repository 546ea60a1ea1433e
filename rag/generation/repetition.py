"""Stop an answer that has started to loop, before the reader sees the repeat.

Small models fall into loops (SmolLM2 repeated the demo's Korean question four times, 41 s of
generation). Text is released a sentence at a time; a sentence that repeats an earlier one, or a
stretch that repeats itself three times in a row inside a sentence, ends the answer there, and the
stream is closed so the server stops generating too.
"""

from __future__ import annotations

import re

_END = re.compile(r"(?<=[.!?。])\s+|\n+")
_LOOP = re.compile(r"(.{6,80}?)\1{2,}", re.DOTALL)  # a stretch of 6-80 chars, three times or more in a row


def _norm(sentence: str) -> str:
    return re.sub(r"\W+", "", sentence.lower())


class RepetitionGuard:
    """`feed` returns the text safe to show; `stopped` turns True when a loop was cut."""

    def __init__(self) -> None:
        self.stopped = False
        self._seen: set[str] = set()
        self._buffer = ""

    def _sentence(self, sentence: str) -> bool:
        """Record a finished sentence; False when it repeats an earlier one."""
        key = _norm(sentence)
        if len(key) >= 8 and key in self._seen:
            return False
        self._seen.add(key)
        return True

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._buffer += piece
        out = []
        while match := _END.search(self._buffer):
            sentence, self._buffer = self._buffer[: match.end()], self._buffer[match.end() :]
            if not self._sentence(sentence):
                self.stopped = True
                return "".join(out)
            out.append(sentence)
        if loop := _LOOP.search(self._buffer):
            out.append(self._buffer[: loop.start() + len(loop.group(1))])
            self.stopped, self._buffer = True, ""
        return "".join(out)

    def finish(self) -> str:
        rest, self._buffer = self._buffer, ""
        if self.stopped or not rest.strip():
            return rest if not self.stopped else ""
        return rest if self._sentence(rest) else ""

"""Stop an answer that has started to loop, before the reader sees the repeat.

Small models fall into loops (SmolLM2 repeated the demo's Korean question four times, 41 s of
generation). A sentence that repeats an earlier one, or a stretch that repeats itself three times
in a row inside a sentence, ends the answer there, and the stream is closed so the server stops
generating too.

Text is released as it comes, so the answer streams token by token. Only what could still turn
out to be a repeat is held back: a sentence while it reads like the start of an earlier sentence
(a few characters, unless it really is the repeat, which is then never shown), and the end of a
sentence while it copies the stretch just before it (at most a few characters in ordinary text).
What is released is never taken back: the final answer is exactly the text released.
"""

from __future__ import annotations

import re

_END = re.compile(r"(?<=[.!?。])\s+|\n+")
_MIN_TURN, _MAX_TURN = 6, 80
_LOOP = re.compile(rf"(.{{{_MIN_TURN},{_MAX_TURN}}}?)\1{{2,}}", re.DOTALL)  # a stretch of 6-80 chars, 3+ times in a row
_MIN_REPEAT = 8  # normalised characters: shorter sentences ("Yes.") may repeat


def _norm(sentence: str) -> str:
    return re.sub(r"\W+", "", sentence.lower())


def _echo(text: str) -> int:
    """How many characters at the end of `text` copy the characters one turn (6-80) before them:
    the start of a possible loop, held until it breaks off or completes its third turn."""
    longest = 0
    for turn in range(_MIN_TURN, min(_MAX_TURN, len(text) - 1) + 1):
        k = 0
        while k + turn < len(text) and text[-1 - k] == text[-1 - k - turn]:
            k += 1
        longest = max(longest, k)
    return longest


class RepetitionGuard:
    """`feed` returns the text safe to show; `stopped` turns True when a loop was cut."""

    def __init__(self) -> None:
        self.stopped = False
        self._seen: set[str] = set()
        self._sentence = ""  # the unfinished sentence, shown or not
        self._shown = 0  # how much of it was released

    def _repeats(self, sentence: str) -> bool:
        key = _norm(sentence)
        return len(key) >= _MIN_REPEAT and key in self._seen

    def _may_repeat(self, sentence: str) -> bool:
        """Could this unfinished sentence still become one already seen?"""
        key = _norm(sentence)
        return bool(key) and any(seen.startswith(key) for seen in self._seen if len(seen) >= _MIN_REPEAT)

    def _release(self, upto: int) -> str:
        """The sentence's text from what was shown to `upto` (never backwards)."""
        if upto <= self._shown:
            return ""
        out, self._shown = self._sentence[self._shown : upto], upto
        return out

    def _cut_loop(self) -> str | None:
        """When the sentence loops: stop, and release up to the end of the loop's first turn."""
        loop = _LOOP.search(self._sentence)
        if not loop:
            return None
        self.stopped = True
        return self._release(loop.start() + len(loop.group(1)))

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        out = []
        rest = piece
        while rest:
            end = _END.search(self._sentence + rest, len(self._sentence))
            take = len(rest) if end is None else end.end() - len(self._sentence)
            self._sentence += rest[:take]
            rest = rest[take:]
            if (cut := self._cut_loop()) is not None:
                return "".join(out) + cut
            if end is None:  # unfinished: release all but what may still become a repeat
                if self._may_repeat(self._sentence):
                    break
                out.append(self._release(len(self._sentence) - _echo(self._sentence)))
                break
            if self._repeats(self._sentence):
                self.stopped = True
                return "".join(out)
            self._seen.add(_norm(self._sentence))
            out.append(self._release(len(self._sentence)))
            self._sentence, self._shown = "", 0
        return "".join(out)

    def finish(self) -> str:
        if self.stopped or self._repeats(self._sentence):
            return ""
        self._seen.add(_norm(self._sentence))
        out = self._release(len(self._sentence))
        self._sentence, self._shown = "", 0
        return out

"""The checks between the model and the reader (repetition guard, citation filter, then the decline
filter, as `generate_answer` chains them) release the answer as it is written: they hold back only
what may still become a repeat, a bad citation or a decline, and what they release is the whole
final text."""

from __future__ import annotations

import re

import pytest

from rag.generation.answer import _unsupported
from rag.generation.citations import CitationFilter
from rag.generation.decline import NOT_FOUND, DeclineFilter
from rag.generation.prompt import EXAMPLE_ANSWER
from rag.generation.repetition import RepetitionGuard
from rag.retrieve.hits import Hit
from rag.store import StoredChunk


def tokens(text: str) -> list[str]:
    """Model-like pieces: a word with its leading space, or one Hangul syllable, or a mark."""
    return re.findall(r"\s*(?:[A-Za-z-]+|[가-힣]|\d+|\S)", text) + ([text[-1]] if text[-1:].isspace() else [])


def released(text: str, passages: int = 3, lang: str = "en") -> tuple[list[str], list[int], RepetitionGuard]:
    """What each piece releases, and how many characters are held after each (until a loop is cut)."""
    out, held, guard, _ = _chain(text, passages, lang)
    return out, held, guard


def _chain(text: str, passages: int, lang: str):
    guard, citations, decline = RepetitionGuard(), CitationFilter(passages), DeclineFilter(lang, [EXAMPLE_ANSWER])
    out, held, fed, shown = [], [], 0, 0
    for piece in tokens(text):
        out.append(decline.feed(citations.feed(guard.feed(piece))))
        fed, shown = fed + len(piece), shown + len(out[-1])
        if not guard.stopped:
            held.append(fed - shown)
    out.append(decline.feed(citations.feed(guard.finish()) + citations.finish()) + decline.finish())
    return out, held, guard, decline


@pytest.mark.parametrize(
    ("written", "lang", "shown"),
    [
        (NOT_FOUND["en"], "ko", NOT_FOUND["ko"]),  # the model's English decline to a Korean question
        ("  The documents do not contain the answer", "ko", NOT_FOUND["ko"]),  # no period
        (NOT_FOUND["ko"], "en", NOT_FOUND["en"]),
        (NOT_FOUND["ko"], "ko", NOT_FOUND["ko"]),
        (f"{NOT_FOUND['en']} [1]", "ko", NOT_FOUND["ko"]),  # a decline citing a passage
        (EXAMPLE_ANSWER, "ko", NOT_FOUND["ko"]),  # the worked example copied (measured, nothing relevant retrieved)
        (
            f"{NOT_FOUND['en']} However, [2] says the café opens at 9.",
            "en",
            f"{NOT_FOUND['en']} However, [2] says the café opens at 9.",
        ),
    ],
)
def test_a_decline_is_shown_in_the_language_of_the_question(written: str, lang: str, shown: str):
    out, _, _, decline = _chain(written, 3, lang)
    assert "".join(out) == shown and decline.declined


@pytest.mark.parametrize(
    "answer",
    [
        "The documents say late fees are 100 won a day [1].",
        "The",
        "제공된 문서에 따르면 연체료는 하루 100원입니다 [1].",
    ],
)
def test_an_answer_that_starts_like_a_decline_is_released_whole_and_is_no_decline(answer: str):
    lang = "ko" if answer.startswith("제") else "en"
    out, _, _, decline = _chain(answer, 3, lang)
    assert "".join(out) == answer and not decline.declined


@pytest.mark.parametrize(
    "answer",
    [
        "The architect behind the current Main Library building is Yoon Seo-jin [1].",
        "알림을 받으면 3일 안에 찾아가야 합니다. [1]",
        "Haeoreum Branch stays open until 20:00 on Wednesdays [2].\nOn other days it closes at 18:00 [2].",
    ],
)
def test_an_ordinary_answer_is_released_as_it_is_written(answer: str):
    assert "".join(tokens(answer)) == answer
    out, held, guard = released(answer)
    assert "".join(out) == answer and not guard.stopped
    assert max(held) <= 4, held  # a few characters at most (a chance echo, an open "[1")
    assert sum(1 for piece in out[:-1] if piece) >= len(out) // 2  # most pieces go out as they come


def test_a_sentence_that_starts_like_an_earlier_one_is_held_only_until_it_differs():
    answer = "The branch opens at 9:00 [1]. The branch closes at 20:00 [1]."
    out, held, guard = released(answer)
    assert "".join(out) == answer and not guard.stopped
    assert max(held) <= len(" The branch c"), held


def test_a_repeat_is_never_released_and_what_was_released_is_the_answer():
    answer = "It opens at 9 [1]. Who opens it? It opens at 9 [1]. Who opens it? It opens at 9 [1]."
    out, _, guard = released(answer)
    assert guard.stopped and "".join(out) == "It opens at 9 [1]. Who opens it? "
    loop = "The answer is " + "very " * 30
    out, held, guard = released(loop)
    assert guard.stopped and "".join(out).count("very") <= 2 and max(held) < 3 * len("very very ")


def test_the_worked_example_copied_is_a_decline_only_where_the_passages_do_not_hold_its_facts():
    def passage(text: str) -> Hit:
        return Hit(StoredChunk(1, "/d/x.txt", "x", None, 0, len(text), text), 1.0, 1)

    cafe = passage("The café on the ground floor opens at 9:00.")
    cards = passage("The first replacement costs 1,000 won. Every further replacement costs 3,000 won.")
    assert _unsupported([EXAMPLE_ANSWER], [cafe]) == [EXAMPLE_ANSWER]
    assert _unsupported([EXAMPLE_ANSWER], [cafe, cards]) == []

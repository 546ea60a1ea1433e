"""Each answer sentence checked against the passages it cites: numbers it states must be there."""

from __future__ import annotations

from rag.generation.support import answer_sentences, check_answer, held_numbers
from rag.retrieve.hits import Hit
from rag.store import StoredChunk

HOLDS = "예약 도서는 알림을 받은 날부터 3일 동안 예약 서가에 보관합니다. 동시에 예약할 수 있는 자료는 최대 3권입니다."
FEES = "The first replacement costs 1,000 won. Every further replacement within the same calendar year costs 3,000 won."
LOANS = "성인은 한 번에 일곱 권까지 빌릴 수 있습니다. 대출 기간은 14일입니다."


def passages(*texts: str) -> list[Hit]:
    return [Hit(StoredChunk(i, f"/d/{i}.txt", str(i), None, 0, len(t), t), 1.0, i) for i, t in enumerate(texts, 1)]


def test_a_citation_after_the_period_belongs_to_its_sentence():
    assert answer_sentences("알림을 받으면 3일 안에 찾아가야 합니다. [1] 보관 서가는 1층입니다 [2].") == [
        ("알림을 받으면 3일 안에 찾아가야 합니다. [1]", [1]),
        ("보관 서가는 1층입니다 [2].", [2]),
    ]


def test_a_number_the_cited_passage_holds_is_supported_and_one_it_does_not_is_flagged():
    given = passages(HOLDS, FEES)
    answer = "알림을 받으면 3일 안에 찾아가야 합니다. [1] A second card costs 5,000 won [2]."
    [right, wrong] = check_answer(answer, given)
    assert right.supported and right.missing == []
    assert not wrong.supported and wrong.missing == ["5000"] and wrong.cited == [2]


def test_a_number_from_another_passage_than_the_one_cited_is_flagged():
    [check] = check_answer("A further replacement costs 3,000 won [1].", passages(HOLDS, FEES))
    assert not check.supported and check.missing == ["3000"]


def test_written_forms_of_one_number_match():
    assert {"1000", "3000"} <= held_numbers(FEES)
    assert {"1", "7", "14"} <= held_numbers(LOANS)  # 한 번, 일곱 권: words before a counter
    [check] = check_answer("성인은 한 번에 7권까지 빌릴 수 있습니다 [1].", passages(LOANS))
    assert check.supported


def test_a_sentence_that_cites_nothing_is_checked_against_every_passage():
    [held, invented] = check_answer("The first card costs 1,000 won. Parking costs 2,000 won.", passages(HOLDS, FEES))
    assert held.supported and held.cited == []
    assert not invented.supported and invented.missing == ["2000"]

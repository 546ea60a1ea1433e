"""Every metric against hand-computed values, ties and empty results included."""

from __future__ import annotations

import math

import pytest

from rag.eval import metrics as m

GOLD = {"g1", "g2"}
RANKING = ["x", "g1", "y", "g2"]


def test_document_ranking_counts_a_document_once_at_its_first_chunk():
    assert m.document_ranking(["a", "a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_hit():
    assert [m.hit_at(RANKING, GOLD, k) for k in (1, 2, 3, 10)] == [0.0, 1.0, 1.0, 1.0]


def test_recall_counts_each_gold_document():
    assert [m.recall_at(RANKING, GOLD, k) for k in (1, 2, 3, 4, 20)] == [0.0, 0.5, 0.5, 1.0, 1.0]


def test_mrr_uses_the_first_gold_document():
    assert [m.mrr_at(RANKING, GOLD, k) for k in (1, 2, 10)] == [0.0, 0.5, 0.5]
    assert m.mrr_at(["g2", "g1"], GOLD, 10) == 1.0


def test_ndcg_against_the_ideal_ordering():
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 / math.log2(2) + 1 / math.log2(3))
    assert m.ndcg_at(RANKING, GOLD, 5) == pytest.approx(expected)  # 0.6509
    assert m.ndcg_at(["g1", "g2", "x"], GOLD, 3) == pytest.approx(1.0)
    # more gold documents than k: the ideal list is only k long, so one hit at rank 1 is perfect
    assert m.ndcg_at(["a"], {"a", "b", "c"}, 1) == pytest.approx(1.0)
    assert m.ndcg_at(["x", "a"], {"a", "b", "c"}, 1) == 0.0


def test_duplicate_chunks_of_one_document_cannot_inflate_scores():
    chunks = ["g1", "g1", "g1", "x", "g2"]
    ranking = m.document_ranking(chunks)
    assert ranking == ["g1", "x", "g2"]
    assert m.recall_at(ranking, GOLD, 2) == 0.5 and m.hit_at(ranking, {"g2"}, 2) == 0.0


def test_empty_results_and_empty_gold_score_zero():
    for fn in (m.hit_at, m.recall_at, m.mrr_at, m.ndcg_at):
        assert fn([], GOLD, 10) == 0.0
        assert fn(RANKING, set(), 10) == 0.0


def test_retrieval_metrics_stop_at_the_candidate_count():
    out = m.retrieval_metrics(RANKING, GOLD, 5)
    assert set(out) == {f"{name}@{k}" for name in ("hit", "recall", "mrr", "ndcg") for k in (1, 3, 5)}
    assert out["mrr@3"] == 0.5 and out["recall@5"] == 1.0


def test_english_exact_match_and_f1_use_squad_normalisation():
    assert m.exact_match("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert m.exact_match("Eiffel", ["eiffel tower"]) == 0.0
    assert m.f1_score("in the year 1987", ["1987"]) == pytest.approx(0.5)  # [in, year, 1987] vs [1987]
    assert m.f1_score("nothing", ["1987", "nothing at all"]) == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))


def test_korean_metrics_are_character_level_without_spaces_or_punctuation():
    assert m.exact_match("1987 년.", ["1987년"]) == 1.0
    # 1,9,8,7,년,입,니,다 against 1,9,8,7,년: P = 5/8, R = 1
    assert m.f1_score("1987년입니다", ["1987년"]) == pytest.approx(2 * (5 / 8) / (1 + 5 / 8))
    assert m.f1_score("뉴진스", ["2022년"]) == 0.0


def test_rouge_l_keeps_hangul():
    assert m.rouge_tokens("뉴진스는 2022년에 데뷔했다.") == ["뉴진스는", "2022년에", "데뷔했다"]
    # LCS of [한빛, 도서관은, 1987년에, 개관] and [도서관은, 1987년에] is 2: P = 1/2, R = 1
    assert m.rouge_l("한빛 도서관은 1987년에 개관", ["도서관은 1987년에"]) == pytest.approx(2 / 3)
    assert m.rouge_l("전혀 다른 문장", ["도서관은 1987년에"]) == 0.0
    assert m.rouge_l("The cat sat", ["the cat sat"]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("answer", "declined"),
    [
        ("I don't know.", True),
        ("The documents do not mention the date.", True),
        ("The provided documents do not contain this information [1].", True),
        ("주어진 문서로는 알 수 없습니다.", True),
        ("The library opened in 1987 [1].", False),
        ("1987년에 개관했습니다 [1].", False),
    ],
)
def test_declines(answer, declined):
    assert m.declines(answer) is declined


def test_percentile_interpolates():
    assert m.percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert m.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert m.percentile([], 50) == 0.0

"""Every metric and the bootstrap interval against hand-computed values, ties and empty results included."""

from __future__ import annotations

import math

import pytest

from rag.eval import metrics as m
from rag.eval.stats import Interval, paired_bootstrap

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


def test_accuracy_is_containment_of_a_normalised_gold_answer():
    # Lost in the Middle: normalise both, then is any gold answer a substring of the answer?
    assert m.accuracy("The tower was designed by Gustave Eiffel, in 1887.", ["Gustave Eiffel"]) == 1.0
    assert m.accuracy("They were fans of Beatles!", ["The Beatles"]) == 1.0  # article and punctuation dropped
    assert m.accuracy("Designed by Eiffel.", ["Gustave Eiffel"]) == 0.0  # part of the answer is not enough
    assert m.accuracy("no idea", ["Paris", "no idea at all"]) == 0.0
    assert m.accuracy("It is in Paris.", ["Lyon", "paris"]) == 1.0  # any of the gold answers
    # Korean: spaces and punctuation removed on both sides ("1987 년." -> "1987년")
    assert m.accuracy("한빛 도서관은 1987 년에 개관했습니다.", ["1987년"]) == 1.0
    assert m.accuracy("한빛 도서관은 1988년에 개관했습니다.", ["1987년"]) == 0.0
    # a gold answer that normalises to nothing is skipped, not contained in every answer
    assert m.accuracy("anything", ["", "!!", "the"]) == 0.0


def test_citation_markers_are_stripped_before_scoring():
    assert m.strip_citations("The library opened in 1987 [1][2].") == "The library opened in 1987."
    assert m.strip_citations("It has 3 floors [1, 2] and a roof [2-4].") == "It has 3 floors and a roof."
    assert m.strip_citations("[2]") == ""
    # without stripping, the citation "[2]" would count as the gold answer "2"
    assert m.accuracy("It has many floors [2].", ["2"]) == 1.0
    assert m.accuracy(m.strip_citations("It has many floors [2]."), ["2"]) == 0.0


def test_bootstrap_of_equal_differences_collapses_to_that_difference():
    interval = paired_bootstrap([0.75] * 10, [0.25] * 10)
    assert interval.n == 10
    assert (interval.mean, interval.low, interval.high) == pytest.approx((0.5, 0.5, 0.5))
    assert paired_bootstrap([1.0], [0.0]) == Interval(1.0, 1.0, 1.0, 1)  # one question: nothing to resample


def test_bootstrap_of_two_differences_spans_both():
    # differences [0, 1]: resample means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so with 2000
    # resamples the 2.5th percentile is 0 and the 97.5th is 1
    assert paired_bootstrap([0.0, 1.0], [0.0, 0.0]) == Interval(0.5, 0.0, 1.0, 2)


def test_bootstrap_contains_the_mean_and_is_seeded():
    rerank = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0]
    baseline = [0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0]
    interval = paired_bootstrap(rerank, baseline)
    assert interval.mean == pytest.approx(3 / 12)  # differences: four +1, one -1, seven 0
    assert interval.low < interval.mean < interval.high
    # close to the normal approximation: mean ± 1.96 · sd / sqrt(n), sd² = 5/12 - (1/4)² (population)
    half_width = 1.96 * math.sqrt((5 / 12 - 1 / 16) / 12)  # 0.337
    assert interval.low == pytest.approx(0.25 - half_width, abs=0.05)
    assert interval.high == pytest.approx(0.25 + half_width, abs=0.05)
    assert paired_bootstrap(rerank, baseline) == interval  # same seed, same interval
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError):
        paired_bootstrap([], [])

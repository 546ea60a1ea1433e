"""Korean-aware BM25 and the fusion that must not let a useless half drag the good half down."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.writer import IndexWriter
from rag.retrieve.fusion import FITTED_FUSION, confidence, fuse
from rag.retrieve.lexical import tokenize, tokenize_many
from rag.retrieve.retrievers import BM25Retriever, HybridRetriever, open_retriever
from tests.conftest import CORPUS, make_settings


def test_korean_particles_and_endings_are_dropped():
    assert tokenize("뉴진스는") == tokenize("뉴진스의") == tokenize("뉴진스가") == ["뉴진스"]
    assert tokenize("뉴진스는 몇 년도에 데뷔했나요?") == ["뉴진스", "몇", "데뷔"]  # 년도 is a bound noun (NNB): dropped


def test_english_is_lowercased_stemmed_and_stop_worded():
    assert tokenize("The Libraries are OPENING new branches") == ["librari", "open", "new", "branch"]


def test_mixed_text_is_handled_token_by_token():
    assert tokenize("NewJeans의 debut 앨범은 2022년에 released") == ["newjean", "debut", "앨범", "2022", "releas"]


def test_ingest_tokenizes_in_bulk_exactly_as_a_query_is_tokenized():
    texts = ["도서관은 밤 10시에 닫습니다.", "Late fees are 100 won a day.", "", "NewJeans는 2022년에 데뷔했다."] * 3
    assert tokenize_many(texts) == [tokenize(t) for t in texts]


def test_confidence_is_scale_free():
    peaked, flat = [10.0, 2.0, 1.5, 1.0, 1.0, 0.5], [0.61, 0.60, 0.60, 0.60, 0.59, 0.5]
    assert confidence(peaked) == pytest.approx(0.9)  # against the 5th score
    assert confidence(flat) == pytest.approx(0.02 / 0.61)
    assert confidence([v * 100 for v in peaked]) == pytest.approx(confidence(peaked))
    assert confidence([]) == 0.0 and confidence([0.0, 0.0]) == 0.0


def _flat(ids: list[int]) -> list[tuple[int, float]]:
    return [(i, 0.60 - 0.001 * n) for n, i in enumerate(ids)]


def _peaked(ids: list[int]) -> list[tuple[int, float]]:
    return [(i, 20.0 if n == 0 else 5.0 - 0.1 * n) for n, i in enumerate(ids)]


def test_a_flat_half_cannot_override_a_peaked_half_either_way():
    noise = list(range(100, 120))
    assert fuse(_flat(noise), _peaked([7, *noise[5:]]))[0][0] == 7  # useless dense, confident BM25
    assert fuse(_peaked([7, *noise[5:]]), _flat(noise))[0][0] == 7  # confident dense, useless BM25


def test_agreement_is_rewarded():
    dense = [(1, 0.8), (2, 0.79), (3, 0.5), (4, 0.4)]
    lexical = [(2, 12.0), (1, 11.0), (5, 3.0), (6, 2.0)]
    assert {i for i, _ in fuse(dense, lexical)[:2]} == {1, 2}


@pytest.mark.parametrize("fitted", [None, FITTED_FUSION["multilingual-e5-small"]])
def test_an_empty_half_leaves_the_other_untouched(fitted):
    dense = [(1, 0.8), (2, 0.5), (3, 0.4)]
    assert [i for i, _ in fuse(dense, [], fitted)] == [1, 2, 3]
    assert [i for i, _ in fuse([], dense, fitted)] == [1, 2, 3]
    assert fuse([], [], fitted) == []


def test_the_fitted_weighting_leans_on_dense_and_follows_confidence():
    noise = list(range(100, 120))
    fitted = FITTED_FUSION["multilingual-e5-small"]
    # both lists equally sure of a different first: dense (weight 0.925) decides
    assert fuse(_peaked([7, *noise[5:]]), _peaked([8, *noise[6:]]), fitted)[0][0] == 7
    # a confident BM25 against a flat dense list moves the weight its way (0.925 + 0.5 * (0.007 - 0.77))
    assert fuse(_flat(noise), _peaked([7, *noise[5:]]), fitted)[0][0] == 7
    assert fuse(_peaked([7, *noise[5:]]), _flat(noise), fitted)[0][0] == 7  # z-scores leave a flat list flat
    dense = [(1, 0.8), (2, 0.79), (3, 0.5), (4, 0.4)]
    lexical = [(2, 12.0), (1, 11.0), (5, 3.0), (6, 2.0)]
    assert {i for i, _ in fuse(dense, lexical, fitted)[:2]} == {1, 2}  # agreement still rewarded


@pytest.fixture
def korean_index(tmp_path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "debut.txt").write_text("뉴진스의 데뷔 앨범은 2022년에 나왔다. 어도어가 기획했다.", encoding="utf-8")
    (docs / "hours.txt").write_text("도서관은 평일 오전 9시에 문을 연다.", encoding="utf-8")
    (docs / "fees.txt").write_text("Late fees are 100 won per day.", encoding="utf-8")
    IndexWriter(make_settings(tmp_path / "index")).ingest([docs])
    return tmp_path


def test_bm25_matches_korean_words_whatever_their_particles(korean_index):
    retriever = BM25Retriever.open(korean_index / "index")
    hits = retriever.retrieve("뉴진스는 몇 년도에 데뷔했나요?", 3)
    assert Path(hits[0].source).name == "debut.txt" and len(hits) == 1  # only documents sharing a word
    assert Path(retriever.retrieve("late fee", 3)[0].source).name == "fees.txt"


def test_bm25_follows_incremental_ingest(korean_index):
    docs, index_dir = korean_index / "docs", korean_index / "index"
    (docs / "debut.txt").write_text("주차장은 지하 2층에 있다.", encoding="utf-8")
    (docs / "fees.txt").unlink()
    IndexWriter(make_settings(index_dir)).ingest([docs])
    retriever = BM25Retriever.open(index_dir)
    assert retriever.retrieve("뉴진스 데뷔", 3) == [] and retriever.retrieve("late fee", 3) == []
    assert Path(retriever.retrieve("주차장 위치", 3)[0].source).name == "debut.txt"


def test_hybrid_finds_korean_and_english(korean_index):
    hybrid = open_retriever("hybrid", korean_index / "index")
    assert isinstance(hybrid, HybridRetriever)
    assert Path(hybrid.retrieve("뉴진스는 언제 데뷔했나요?", 3)[0].source).name == "debut.txt"
    assert Path(hybrid.retrieve("How much is the late fee?", 3)[0].source).name == "fees.txt"


def test_hybrid_is_the_dense_ranking_when_bm25_finds_nothing(korean_index):
    """An English question over Korean documents shares no word with them: BM25 returns nothing,
    and the fusion must hand over the dense list as it is (e5 reads across the two languages)."""
    hybrid = open_retriever("hybrid", korean_index / "index")
    question = "In which year did the girl group release their first album?"  # no word of any document
    assert hybrid.lexical.retrieve(question, 3) == []
    fused, dense = hybrid.retrieve(question, 3), hybrid.dense.retrieve(question, 3)
    assert [h.chunk.id for h in fused] == [h.chunk.id for h in dense]
    assert Path(fused[0].source).name == "debut.txt"


def test_hybrid_puts_every_corpus_question_in_the_llm_context(corpus_index, corpus_questions):
    """On docs_corpus, Korean questions too: hybrid was 28/28 at hit@1 when this was written."""
    hybrid = open_retriever("hybrid", corpus_index)
    found = {"en": 0, "ko": 0}
    for question in corpus_questions:
        sources = {h.source for h in hybrid.retrieve(question["question"], 4)}
        found[question["lang"]] += str(CORPUS / question["gold_ids"][0]) in sources
    assert found["en"] >= 13 and found["ko"] >= 13

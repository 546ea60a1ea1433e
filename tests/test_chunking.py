"""Chunks end at sentence boundaries (Korean too), overlap, and map back to exact offsets."""

from __future__ import annotations

import itertools

import pytest

from ingest.chunking import chunk_text, sentence_spans

EN = (
    "The main library opened in 1987. It has four floors and a rooftop garden! "
    "Adults may borrow seven books at once. Children may borrow five. "
    "Renewals are allowed twice, unless someone placed a hold.\n\n"
    "The makerspace has two 3D printers. Printing costs 50 won per gram of filament. "
    "Sessions must be booked a day in advance."
)
# Korean sentences that end without a period ("~요", "~다") are where a regex splitter fails.
KO = (
    "한빛시립도서관 본관은 1987년에 문을 열었어요 지금은 네 개 층과 옥상 정원이 있습니다. "
    "성인은 한 번에 일곱 권까지 빌릴 수 있다 어린이는 다섯 권까지 빌릴 수 있어요. "
    "대출은 두 번 연장할 수 있습니다. 예약자가 있으면 연장할 수 없어요.\n\n"
    "메이커스페이스에는 3D 프린터가 두 대 있습니다. 출력 비용은 필라멘트 1그램에 50원입니다."
)


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def test_english_sentences():
    assert sentences(EN)[:4] == [
        "The main library opened in 1987.",
        "It has four floors and a rooftop garden!",
        "Adults may borrow seven books at once.",
        "Children may borrow five.",
    ]


def test_korean_sentences_without_final_period_are_split():
    found = sentences(KO)
    assert "한빛시립도서관 본관은 1987년에 문을 열었어요" in found
    assert "성인은 한 번에 일곱 권까지 빌릴 수 있다" in found


@pytest.mark.parametrize("text", [EN, KO])
def test_chunks_are_exact_slices_within_size_and_end_at_sentences(text):
    ends = {b for _, b in sentence_spans(text)}
    starts = {a for a, _ in sentence_spans(text)}
    chunks = chunk_text(text, size=80, overlap=30)
    assert len(chunks) > 2
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text) <= 80
        assert chunk.end in ends and chunk.start in starts  # never cut inside a sentence


@pytest.mark.parametrize("text", [EN, KO])
def test_neighbouring_chunks_overlap_and_cover_the_text(text):
    chunks = chunk_text(text, size=120, overlap=60)
    assert any(nxt.start < prev.end for prev, nxt in itertools.pairwise(chunks))
    assert all(nxt.start > prev.start for prev, nxt in itertools.pairwise(chunks))
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_no_overlap_means_disjoint_chunks():
    chunks = chunk_text(EN, size=100, overlap=0)
    assert all(nxt.start >= prev.end for prev, nxt in itertools.pairwise(chunks))


def test_a_sentence_longer_than_the_chunk_is_cut_at_whitespace():
    text = "word " * 100 + "end."
    chunks = chunk_text(text, size=50, overlap=0)
    assert all(len(c.text) <= 50 for c in chunks)
    assert all(not c.text.startswith(" ") and not c.text.endswith(" ") for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == text.replace(" ", "")


def test_whole_short_text_is_one_chunk():
    assert [c.text for c in chunk_text("Just one sentence.", 700, 120)] == ["Just one sentence."]
    assert chunk_text("   \n\n  ", 700, 120) == []


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_invalid_settings_are_refused(size, overlap):
    with pytest.raises(ValueError, match="chunk size"):
        chunk_text(EN, size, overlap)

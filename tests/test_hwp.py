"""HWP 5 and HWPX read from real files Hangul saved (tests/data/hwp, sources and licences in its
SOURCES.md), the same document in both formats where the source repository has both, plus files
made unreadable on purpose: locked, distribution-only, truncated, flagged."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import unicodedata
from pathlib import Path

import pytest

from ingest.loaders import SkipFile, load_file
from tests.conftest import make_settings

HWP_DATA = Path(__file__).parent / "data" / "hwp"


def _checked() -> dict[str, str]:
    """The fixtures' sha256 as SOURCES.md lists them."""
    text = (HWP_DATA / "SOURCES.md").read_text(encoding="utf-8")
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M)}


SHA256 = _checked()


def data(name: str) -> bytes:
    raw = (HWP_DATA / name).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SHA256[name], f"{name} differs from SOURCES.md"
    return raw


def text_of(name: str, raw: bytes | None = None) -> str:
    loaded = load_file(Path(name), data(name) if raw is None else raw, 50 * 2**20)
    return "\n\n".join(page.text for page in loaded.pages)


def test_every_fixture_is_listed_with_its_checksum():
    files = {p.name for p in HWP_DATA.iterdir() if p.suffix in (".hwp", ".hwpx")}
    assert files == set(SHA256)


@pytest.mark.parametrize("stem", ["noori", "footnote-endnote", "headerfooter", "pagedefs", "table-caption"])
def test_hwp_and_hwpx_of_one_document_read_the_same(stem):
    assert text_of(f"{stem}.hwp") == text_of(f"{stem}.hwpx")


@pytest.mark.parametrize("name", ["noori.hwp", "noori.hwpx"])
def test_a_press_release_reads_as_clean_text_with_its_table_rows_named(name):
    text = text_of(name)
    # no inline control codes decoded as CJK or private-use garbage, no stray control characters
    odd = [
        c for c in text if "\u4e00" <= c <= "\u9fff" or (unicodedata.category(c) in ("Co", "Cc") and c not in "\n\t")
    ]
    assert odd == []
    assert "□ 과학기술정보통신부(장관 유영민, 이하 ‘과기정통부’)는" in text
    # the comparison table: every row carries its column names, so a chunk of it still says what 47.2 m is
    assert "구 분: 총 길이 | 한국형발사체(누리호): 47.2 m | 시험발사체: 25.8 m" in text
    # the 보도일시 box is a layout table: its merged sentence is said once, not taken for a header
    assert text.startswith("보도일시 | 2018. 9. 4.(화) 조간(온라인 9. 3. 12:00)부터 보도해 주시기 바랍니다.\n\n")
    assert text.count("보도해 주시기 바랍니다") == 1
    # reading order: the headline before the body, the attachment's table last
    assert text.index("국민이 정한 그 이름은") < text.index("□ 과학기술정보통신부") < text.index("구 분: 총 길이")


@pytest.mark.parametrize("suffix", [".hwp", ".hwpx"])
def test_footnotes_follow_their_paragraph_and_endnotes_close_the_document(suffix):
    assert text_of(f"footnote-endnote{suffix}").split("\n\n") == [
        "각주참조",
        "[각주] 각주입니다.",
        "[각주] 각주 두 번째입니다.",
        "미주참조",
        "[미주] 미주입니다.",
        "[미주] 미주 두 번째입니다.",
    ]


@pytest.mark.parametrize("suffix", [".hwp", ".hwpx"])
def test_header_and_footer_are_said_once_around_the_body(suffix):
    assert text_of(f"headerfooter{suffix}") == "Header 이것은 머리말입니다.\n\n첫 페이지\n\nFooter 이것은 꼬리말입니다."


@pytest.mark.parametrize("suffix", [".hwp", ".hwpx"])
def test_each_section_is_a_page_in_order(suffix):
    loaded = load_file(Path(f"pagedefs{suffix}"), data(f"pagedefs{suffix}"), 50 * 2**20)
    assert [(p.number, p.text) for p in loaded.pages] == [(1, "Section 1: A4 portrait"), (2, "Section 2: A4 landscape")]
    assert loaded.title == "Section 1: A4 portrait"


@pytest.mark.parametrize("suffix", [".hwp", ".hwpx"])
def test_table_captions_come_before_their_table_with_their_numbers(suffix):
    text = text_of(f"table-caption{suffix}")
    assert text.startswith("표 1 위 캡션\n\n표 2 아래 캡션\n\n표 3 왼쪽")


def test_hwp_cells_land_at_their_row_and_column():
    """Each cell of this table holds its own address "row,col" (a 7 x 7 grid)."""
    lines = text_of("hwplib-merging-cell.hwp").split("\n\n")
    assert lines == [" | ".join(f"{r},{c}" for c in range(7)) for r in range(7)]


def test_a_score_table_keeps_its_header_on_every_row():
    text = text_of("hwpxlib-Table.hwpx")
    assert "이름: 칠득이 | 국어: 77 | 영어: 77 | 수학: 77" in text


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("password-12345.hwp", "password-protected HWP"),
        ("password-12345.hwpx", "password-protected HWPX"),
        ("viewtext.hwp", r"distribution-only \(배포용\)"),
    ],
)
def test_locked_documents_are_skipped_with_that_reason(name, reason):
    with pytest.raises(SkipFile, match=reason):
        text_of(name)


def _flagged(flag: int) -> bytes:
    """footnote-endnote.hwp with one more FileHeader property bit set (olefile rewrites the stream
    in place, same size, on a copy)."""
    import olefile

    raw = io.BytesIO(data("footnote-endnote.hwp"))
    with olefile.OleFileIO(raw, write_mode=True) as ole:
        header = bytearray(ole.openstream("FileHeader").read())
        flags = int.from_bytes(header[36:40], "little") | flag
        header[36:40] = flags.to_bytes(4, "little")
        ole.write_stream("FileHeader", bytes(header))
    return raw.getvalue()


@pytest.mark.parametrize(
    ("flag", "reason"),
    [(1 << 1, "password-protected"), (1 << 2, "distribution-only"), (1 << 4, "DRM")],
)
def test_the_file_header_flags_are_honoured(flag, reason):
    with pytest.raises(SkipFile, match=reason):
        text_of("footnote-endnote.hwp", _flagged(flag))


@pytest.mark.parametrize("name", ["noori.hwp", "noori.hwpx", "headerfooter.hwp"])
def test_a_truncated_file_is_skipped_with_a_reason(name):
    raw = data(name)
    with pytest.raises(SkipFile, match=r"damaged|broken|not an HWP"):
        text_of(name, raw[: len(raw) // 2])


def test_a_folder_of_hwp_files_is_indexed_and_its_bad_files_reported(tmp_path):
    from ingest.writer import IndexWriter
    from rag.retrieve.retrievers import DenseRetriever
    from rag.store import open_store

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ["noori.hwp", "headerfooter.hwpx", "password-12345.hwp", "viewtext.hwp"]:
        shutil.copy(HWP_DATA / name, folder / name)
    (folder / "cut.hwp").write_bytes(data("noori.hwp")[:20_000])
    settings = make_settings(tmp_path / "index")
    report = IndexWriter(settings).ingest([folder])
    reasons = {Path(p).name: why for p, why in report.skipped}
    assert set(reasons) == {"password-12345.hwp", "viewtext.hwp", "cut.hwp"}
    assert "password" in reasons["password-12345.hwp"] and "배포용" in reasons["viewtext.hwp"]
    assert sorted(Path(p).name for p in report.ingested) == ["headerfooter.hwpx", "noori.hwp"]
    hit = DenseRetriever.open(open_store(settings)).retrieve("한국형발사체의 총 길이는 얼마인가요?", 1)[0]
    assert Path(hit.source).name == "noori.hwp" and hit.chunk.page == 1

"""Spreadsheets, delimited text, slides, HWPX and the packaged-format guards, read as a user's folder
holds them: files written by the libraries office software uses (openpyxl, python-pptx, python-docx)
and HWPX packages laid out as Hangul writes them (tests/office_files.py)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from ingest.chunking import chunk_text
from ingest.loaders import SkipFile, load_file
from tests import office_files as of


def load(name: str, data: bytes, unpack_limit: int = 50 * 2**20):
    return load_file(Path(name), data, unpack_limit)


def _xlsx(build) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    build(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_every_sheet_is_a_page_and_every_row_names_its_columns():
    def build(book):
        sheet = book.active
        sheet.title = "도서구입"
        sheet.append(["품목", "수량", "단가", "구입일"])
        for i in range(1, 61):
            sheet.append([f"도서{i}", i, 12000 + i, dt.date(2026, 3, 1 + i % 28)])
        for row in sheet.iter_rows(min_row=2, min_col=3, max_col=3):
            row[0].number_format = '#,##0"원"'
        second = book.create_sheet("대출 비율")
        second.append(["구분", "비율"])
        second.append(["어린이", 0.153])
        second["B2"].number_format = "0.0%"
        book.properties.title = "2026 도서 예산"

    loaded = load("budget.xlsx", _xlsx(build))
    assert loaded.title == "2026 도서 예산"
    assert [p.number for p in loaded.pages] == [1, 2]
    first, second = (p.text for p in loaded.pages)
    assert first.startswith("도서구입")
    assert "품목: 도서42 | 수량: 42 | 단가: 12,042원 | 구입일: 2026-03-15" in first
    assert "대출 비율" in second and "어린이: 15.3%" in second
    # however the chunker cuts the sheet, each chunk still says what its numbers are
    chunks = chunk_text(first, size=300, overlap=50)
    assert len(chunks) > 5
    assert all("수량:" in c.text and "단가:" in c.text for c in chunks)


def test_a_formula_reads_as_the_value_excel_saved():
    def build(book):
        sheet = book.active
        sheet.append(["항목", "금액"])
        sheet.append(["합계", "=SUM(1,2)"])

    # openpyxl writes no cached value: the cell reads empty rather than as its formula text
    assert "=SUM" not in load("f.xlsx", _xlsx(build)).pages[0].text


@pytest.mark.parametrize("encoding", ["utf-8", "cp949"])
def test_csv_in_korean_encodings_with_its_delimiter_sniffed(encoding):
    text = "이름;전화;부서\n홍길동;02-123-4567;총무과\n김영희;02-765-4321;민원과\n"
    loaded = load("staff.csv", text.encode(encoding))
    assert "이름: 김영희 | 전화: 02-765-4321 | 부서: 민원과" in loaded.pages[0].text


def test_tsv_is_read_by_tabs():
    loaded = load("hours.tsv", b"day\topen\tclose\nMon\t9:00\t18:00\nSat\t10:00\t13:00\n")
    assert "day: Sat | open: 10:00 | close: 13:00" in loaded.pages[0].text


def test_slides_keep_title_text_tables_and_notes_with_the_slide_as_page():
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "대출 규정"
    slide.shapes.add_textbox(
        Inches(1), Inches(2), Inches(4), Inches(1)
    ).text_frame.text = "한 번에 5권까지 빌릴 수 있습니다."
    grid = slide.shapes.add_table(3, 3, Inches(1), Inches(3), Inches(6), Inches(2)).table
    for r, row in enumerate([["구분", "권수", "기간"], ["일반", "5", "14일"], ["학생", "3", "7일"]]):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    slide.notes_slide.notes_text_frame.text = "연체하면 하루에 100원입니다."
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Returns"
    second.placeholders[1].text = "Return books at the front desk."
    out = io.BytesIO()
    deck.save(out)

    loaded = load("rules.pptx", out.getvalue())
    assert loaded.title == "대출 규정"
    assert [p.number for p in loaded.pages] == [1, 2]
    first = loaded.pages[0].text
    assert first.startswith("대출 규정")
    assert "한 번에 5권까지 빌릴 수 있습니다." in first
    assert "구분: 학생 | 권수: 3 | 기간: 7일" in first
    assert "[노트] 연체하면 하루에 100원입니다." in first
    assert loaded.pages[1].text == "Returns\n\nReturn books at the front desk."


def test_docx_tables_keep_their_column_names():
    import docx

    document = docx.Document()
    document.add_paragraph("열람실 좌석 현황입니다.")
    grid = document.add_table(rows=3, cols=3)
    for r, row in enumerate([["층", "좌석", "개방"], ["2층", "120", "09:00"], ["3층", "80", "10:00"]]):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    assert "층: 3층 | 좌석: 80 | 개방: 10:00" in load("seats.docx", out.getvalue()).pages[0].text


def test_hwpx_reads_sections_in_spine_order_with_tables_notes_and_header_once():
    first = of.section(
        [
            ("", of.header("한빛시립도서관 운영 규정")),
            "제1조 대출 기간은 14일입니다.",
            ("", of.table([["구분", "권수", "기간"], ["일반", "5권", "14일"], ["학생", "3권", "7일"]])),
            ("연체료는 하루 100원입니다.", of.footnote("2026년 1월부터 적용합니다.")),
        ]
    )
    second = of.section(
        [("", of.header("한빛시립도서관 운영 규정")), ("제2조 예약은 3일간 유지됩니다.", of.endnote("부칙 참조."))]
    )
    loaded = load("rules.hwpx", of.hwpx([first, second], title="운영 규정", order=[1, 0]))
    assert loaded.title == "운영 규정"
    assert [p.number for p in loaded.pages] == [1, 2]
    text = "\n\n".join(p.text for p in loaded.pages)
    assert text.count("한빛시립도서관 운영 규정") == 1
    assert text.index("제2조") < text.index("제1조")  # the spine's order, not the file names'
    assert "구분: 학생 | 권수: 3권 | 기간: 7일" in text
    assert "연체료는 하루 100원입니다.\n\n[각주] 2026년 1월부터 적용합니다." in text
    assert text.rstrip().endswith("[미주] 부칙 참조.")
    assert "<" not in text and "hp:" not in text


def test_hwpx_merged_cells_repeat_their_value_in_every_row_they_span():
    sec = of.section(
        [("", of.table([["과", "담당", "전화"], ["총무과", "김", "101"], ["", "이", "102"]], spans={(1, 0): (2, 1)}))]
    )
    text = load("phones.hwpx", of.hwpx([sec])).pages[0].text
    assert "과: 총무과 | 담당: 이 | 전화: 102" in text


def test_hwpx_title_falls_back_to_the_first_line():
    loaded = load("a.hwpx", of.hwpx([of.section(["도서관 휴관 안내", "12월 25일은 휴관합니다."])]))
    assert loaded.title == "도서관 휴관 안내"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("locked.hwpx", of.hwpx([of.section(["비밀"])], encrypted=True), "password-protected HWPX"),
        ("broken.hwpx", b"PK\x03\x04 not really a zip", "broken hwpx"),
        ("bad.hwpx", of.hwpx(["<hs:sec><hp:p>unclosed"]), "damaged Contents/section0.xml"),
        ("broken.xlsx", b"PK\x03\x04 nope", "broken xlsx"),
        ("broken.pptx", b"\x00\x01 not a deck", "broken pptx"),
    ],
)
def test_broken_and_locked_packages_are_skipped_with_their_reason(name, data, reason):
    with pytest.raises(SkipFile, match=reason):
        load(name, data)


@pytest.mark.parametrize("name", ["bomb.xlsx", "bomb.hwpx", "bomb.docx", "bomb.pptx"])
def test_a_zip_bomb_is_refused_before_it_is_unpacked(name):
    data = of.zip_bomb("xl/worksheets/sheet1.xml", unpacked_mb=64)
    assert len(data) < 200_000
    with pytest.raises(SkipFile, match=r"unpacks to 64 MB, over the 8 MB limit .*RAG_MAX_FILE_MB"):
        load(name, data, unpack_limit=8 * 2**20)


@pytest.mark.parametrize("suffix", [".xlsx", ".docx"])
def test_a_password_protected_office_file_says_so(suffix, tmp_path):
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = _xlsx(lambda book: book.active.append(["a", "b"])) if suffix == ".xlsx" else _docx("비밀 문서")
    locked = io.BytesIO()
    OOXMLFile(io.BytesIO(plain)).encrypt("1234", locked)
    with pytest.raises(SkipFile, match=f"password-protected {suffix[1:]}"):
        load(f"locked{suffix}", locked.getvalue())


def _docx(text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_a_sheet_that_declares_every_cell_reads_only_the_cells_it_stores():
    """A 5 KB workbook whose last cell is XFD1048576: openpyxl would pad to 17 billion cells."""

    def build(book):
        sheet = book.active
        sheet.append(["이름", "값"])
        sheet.append(["연체료", 100])
        sheet.cell(row=1_048_576, column=16_384, value="끝")

    loaded = load("sparse.xlsx", _xlsx(build))
    text = loaded.pages[0].text
    assert "이름: 연체료 | 값: 100" in text or "연체료: 100" in text
    assert text.rstrip().endswith("끝")


def test_a_workbook_past_the_cell_limit_is_skipped_with_the_reason():
    def build(book):
        sheet = book.active
        for row in range(1, 80):  # each row padded to 16,384 cells by its last one: 1.3 million in all
            sheet.cell(row=row, column=1, value=f"행{row}")
            sheet.cell(row=row, column=16_384, value="x")

    with pytest.raises(SkipFile, match=r"past 1,000,000 cells \(split it"):
        load("wide.xlsx", _xlsx(build))

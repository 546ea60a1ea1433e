"""Each format, each encoding, each kind of bad input: what a user's folder really holds."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ingest.encoding import decode_text
from ingest.loaders import SkipFile, load_file

KO = "한빛시립도서관은 1987년에 개관했습니다. 대출 기간은 14일입니다."


def load(name: str, data: bytes):
    return load_file(Path(name), data)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949", "euc-kr", "utf-16"])
def test_korean_text_in_every_common_encoding_decodes(encoding):
    loaded = load("notice.txt", KO.encode(encoding))
    assert loaded.pages[0].text == KO
    assert loaded.title == "notice"


def test_decode_reports_legacy_korean_encoding():
    assert decode_text(KO.encode("cp949")) == (KO, "cp949")


def test_latin1_text_decodes_by_detection():
    text = "Café opening hours: Monday to Friday, 9 to 18. Crème brûlée is served on Fridays. " * 3
    assert "Crème brûlée" in load("menu.txt", text.encode("latin-1")).pages[0].text


def test_crlf_line_endings_are_normalised():
    assert load("a.txt", b"one\r\ntwo\r\n").pages[0].text == "one\ntwo\n"


def test_markdown_title_is_first_heading():
    loaded = load("guide.md", "intro\n\n# 이용 안내\n\n본문입니다.".encode())
    assert loaded.title == "이용 안내"
    assert "본문입니다." in loaded.pages[0].text


def test_html_drops_scripts_and_navigation_and_keeps_paragraphs():
    html = (
        "<html><head><title>Hours</title><script>var secret = 1;</script></head><body>"
        "<nav>Home | About</nav><h1>Opening hours</h1><p>Open 9 to 18.</p><p>Closed on Mondays.</p>"
        "<style>p {color: red}</style></body></html>"
    )
    loaded = load("hours.html", html.encode())
    text = loaded.pages[0].text
    assert loaded.title == "Hours"
    assert "Open 9 to 18." in text and "Closed on Mondays." in text
    assert "secret" not in text and "Home | About" not in text and "color" not in text
    assert "Open 9 to 18.\n\nClosed on Mondays." in text


def test_html_table_rows_keep_their_column_names_and_cells_never_run_together():
    """A schedule read as "화 14:40~16:003층 과학실" loses both the time and the room."""
    html = (
        "<html><body><p>방과후 강좌 안내.</p><table><caption>2학기 강좌</caption>"
        "<tr><th>강좌</th><th>시간</th><th>장소</th></tr>"
        "<tr><td rowspan='2'>로봇 코딩</td><td>화 14:40~16:00</td><td>3층 과학실</td></tr>"
        "<tr><td>목 14:40~16:00</td><td>2층 컴퓨터실</td></tr>"
        "<tr><td colspan='3'>재료비 없음</td></tr></table><p>신청은 11일까지.</p></body></html>"
    )
    text = load("after-school.html", html.encode()).pages[0].text
    assert "2학기 강좌\n\n강좌: 로봇 코딩 | 시간: 화 14:40~16:00 | 장소: 3층 과학실" in text
    assert "강좌: 로봇 코딩 | 시간: 목 14:40~16:00 | 장소: 2층 컴퓨터실" in text  # the rowspan repeated
    assert "\n\n재료비 없음\n\n" in text and text.startswith("방과후 강좌 안내.") and text.endswith("신청은 11일까지.")


def test_html_in_euc_kr_decodes():
    html = f'<html><head><meta charset="euc-kr"><title>공지</title></head><body><p>{KO}</p></body></html>'
    loaded = load("notice.htm", html.encode("euc-kr"))
    assert loaded.title == "공지" and KO in loaded.pages[0].text


def _pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_pdf_keeps_page_numbers():
    loaded = load("report.pdf", _pdf(["Page one talks about fees.", "", "Page three talks about hours."]))
    assert [p.number for p in loaded.pages] == [1, 3]  # the blank page 2 holds no text
    assert "fees" in loaded.pages[0].text and "hours" in loaded.pages[1].text


def test_docx_paragraphs_and_tables():
    import docx

    document = docx.Document()
    document.core_properties.title = "Rules"
    document.add_paragraph("Adults may borrow 7 books.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Late fee"
    table.rows[0].cells[1].text = "100 won"
    buffer = io.BytesIO()
    document.save(buffer)
    loaded = load("rules.docx", buffer.getvalue())
    assert loaded.title == "Rules"
    assert "Adults may borrow 7 books." in loaded.pages[0].text
    assert "Late fee: 100 won" in loaded.pages[0].text  # a two-column table reads as label: value


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.pdf", b"%PDF-1.7\n this is not really a pdf", "broken pdf"),
        ("broken.docx", b"PK\x03\x04 not a zip at all", "broken docx"),
        ("blob.txt", b"\x00\x01\x02\x03binary\x00", "binary"),
        ("empty.md", b"  \n\t\n", "empty"),
        ("photo.jpg", b"\xff\xd8\xff\xe0", "unsupported file type '.jpg'"),
        ("scripts.html", b"<html><script>x()</script></html>", "no text"),
    ],
)
def test_bad_input_is_skipped_with_a_reason(name, data, reason):
    with pytest.raises(SkipFile, match=reason):
        load(name, data)


def test_pdf_of_blank_pages_says_it_has_neither_text_nor_scans():
    with pytest.raises(SkipFile, match="no text layer and no scanned page images"):
        load("blank.pdf", _pdf([""]))


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("도서 예약 서비스 이용 안내\n=========\n\n대출 중이면 예약하세요.", "도서 예약 서비스 이용 안내"),
        ("LOST CARD POLICY\nHanbit City Library, effective 1 July 2024\n", "LOST CARD POLICY"),
        ("\n\n  [알림] 강변분관 임시 휴관 안내  \n\n안녕하십니까.", "[알림] 강변분관 임시 휴관 안내"),
        ("대출 기간은 14일입니다. 연장은 한 번 됩니다.", "notice"),  # a sentence, not a title
        ("==========\n", "notice"),
        ("x" * 81 + "\nbody", "notice"),  # too long for a title
    ],
)
def test_plain_text_title_is_its_first_line_when_it_reads_as_one(text, title):
    assert load("notice.txt", text.encode()).title == title

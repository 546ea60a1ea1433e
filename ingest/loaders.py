"""Turn one file into pages of plain text, or say in one line why it cannot be read.

Each loader returns a `LoadedFile`; a file that must be skipped raises `SkipFile(reason)`, which the
ingest summary shows next to the path. Pages are numbered (1-based) where the format has them:
PDF pages, HWP/HWPX sections, spreadsheet sheets and slides.

Formats: text (.txt, legacy Korean encodings), Markdown, HTML, PDF, docx, HWP 5 (ingest.hwp),
HWPX (ingest.hwpx), xlsx/csv/tsv (ingest.sheets) and pptx (ingest.slides). Tables in every format
go through ingest.tables, so a row keeps its column names. Zip-based packages are checked first
(ingest.containers): a package that unpacks past `unpack_limit` bytes, or one saved with a
password, is skipped with that reason.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.containers import ContainerError, check_zip
from ingest.encoding import UndecodableError, decode_text
from ingest.hwp import HwpDocument, HwpError, read_hwp
from ingest.hwpx import read_hwpx
from ingest.ocr import OcrUnavailable, ocr_pdf_pages
from ingest.sheets import SheetTooLarge, delimited_rows, sheet_text, xlsx_sheets
from ingest.slides import pptx_slides
from ingest.tables import clean_cell, grid, render_table

DEFAULT_UNPACK_LIMIT = 50 * 2**20  # RAG_MAX_FILE_MB's default


class SkipFile(Exception):
    """A file that is not ingested; the message is the reason shown to the user."""


@dataclass
class Page:
    text: str
    number: int | None = None  # 1-based: a PDF page, an HWP section, a sheet, a slide
    ocr: bool = False  # read from a scan by OCR


@dataclass
class LoadedFile:
    title: str
    pages: list[Page] = field(default_factory=list)
    unread: str = ""  # what of the file was left out and why (scanned pages with no OCR engine)


def _decode(data: bytes) -> str:
    try:
        text, _ = decode_text(data)
    except UndecodableError as exc:
        raise SkipFile(str(exc)) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


_TITLE_MAX = 80
_SENTENCE_END = (".", "!", "?", "。", ":", ",")


def text_title(text: str, fallback: str) -> str:
    """A plain text file's title: its first line when that reads as one (short, not a sentence),
    else `fallback` (the file name). Office notices open with their title ("도서 예약 서비스 이용
    안내", underlined or not); a file named `holds.txt` says nothing to a Korean question, and the
    LLM reads the title beside each passage to tell two similar rules apart."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first or len(first) > _TITLE_MAX or first.endswith(_SENTENCE_END) or not any(c.isalnum() for c in first):
        return fallback
    return first


def load_text(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    text = _decode(data)
    return LoadedFile(title=text_title(text, path.stem), pages=[Page(text)])


_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def load_markdown(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    text = _decode(data)
    heading = _MD_HEADING.search(text)
    return LoadedFile(title=heading.group(1) if heading else path.stem, pages=[Page(text)])


_HTML_NOISE = ("script", "style", "noscript", "nav", "header", "footer", "template", "svg")
_BLOCKS = (
    "p",
    "div",
    "section",
    "article",
    "li",
    "tr",
    "br",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "pre",
    "blockquote",
)


def _span(cell, name: str) -> int:
    value = str(cell.get(name) or "1").strip()
    return min(int(value), 100) if value.isdigit() and int(value) > 0 else 1


def _html_table_rows(table) -> list[list[str]]:
    """The table's rows as a grid (rowspan and colspan filled in, as the HWP and docx readers do),
    so its rows read as `column: value` lines instead of cells run together ("16:003층")."""
    cells, taken = [], set()
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    for r, tr in enumerate(rows):
        c = 0
        for cell in tr.find_all(["td", "th"], recursive=False):
            while (r, c) in taken:
                c += 1
            rowspan, colspan = _span(cell, "rowspan"), _span(cell, "colspan")
            cells.append((r, c, rowspan, colspan, clean_cell(cell.get_text(" "))))
            taken.update((rr, cc) for rr in range(r, r + rowspan) for cc in range(c, c + colspan))
            c += colspan
    try:
        return grid(cells)
    except ValueError:  # a hostile span: the cells in document order, one row each
        return [[text] for *_, text in cells]


def load_html(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(_HTML_NOISE):
        tag.decompose()
    body = soup.body or soup
    for table in reversed(body.find_all("table")):  # innermost first: a nested table is one cell's text
        caption = table.find("caption")
        text = render_table(_html_table_rows(table))
        if caption and caption.find_parent("table") is table:
            text = clean_cell(caption.get_text(" ")) + "\n\n" + text
        table.replace_with(soup.new_string(f"\n\n{text}\n\n"))
    for block in body.find_all(_BLOCKS):  # keep paragraph breaks so sentences do not merge
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    lines = (" ".join(line.split()) for line in body.get_text().split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    h1 = body.find("h1")
    return LoadedFile(title=title or (h1.get_text(strip=True) if h1 else path.stem), pages=[Page(text)])


def load_pdf(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted pdf (needs a password)")
        pages = [Page(page.extract_text() or "", number=i) for i, page in enumerate(reader.pages, 1)]
        scans = [i for i, page in enumerate(reader.pages, 1) if not pages[i - 1].text.strip() and len(page.images)]
        meta_title = reader.metadata.title if reader.metadata else None
    except SkipFile:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise SkipFile(f"broken pdf ({type(exc).__name__}: {exc})") from exc
    loaded = LoadedFile(title=str(meta_title or path.stem), pages=[p for p in pages if p.text.strip()])
    if scans:
        _add_scans(loaded, data, scans)
    if not loaded.pages:
        raise SkipFile("pdf has no text layer and no scanned page images")
    return loaded


def _add_scans(loaded: LoadedFile, data: bytes, numbers: list[int]) -> None:
    """Scanned pages (no text layer, an image) read by OCR (ingest.ocr). Without Tesseract a PDF
    that is all scans is skipped with the install line; one that also has text keeps its text pages
    and says which pages it left out (`unread`), so the next ingest with Tesseract reads them."""
    try:
        texts = ocr_pdf_pages(data, numbers)
    except OcrUnavailable as exc:
        if not loaded.pages:
            raise SkipFile(str(exc)) from exc
        listed = ", ".join(map(str, numbers))
        loaded.unread = f"scanned page{'s' * (len(numbers) > 1)} {listed} left out: {exc}"
        return
    scans = [Page(text, number=n, ocr=True) for n, text in texts.items() if text.strip()]
    loaded.pages = sorted(loaded.pages + scans, key=lambda p: p.number or 0)


def load_docx(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, KeyError, lxml errors: the set varies by version
        raise SkipFile(f"broken docx ({type(exc).__name__}: {exc})") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        parts.append(render_table([[cell.text for cell in row.cells] for row in table.rows]))
    text = "\n\n".join(p.strip() for p in parts if p.strip())
    return LoadedFile(title=document.core_properties.title or path.stem, pages=[Page(text)])


def _hwp_pages(path: Path, read: Callable[[], HwpDocument]) -> LoadedFile:
    try:
        document = read()
    except HwpError as exc:
        raise SkipFile(str(exc)) from exc
    pages = [Page(text, number=i) for i, text in enumerate(document.sections, 1) if text.strip()]
    first = pages[0].text if pages else ""
    stated = document.title if _title_in_text(document.title, pages) else ""
    return LoadedFile(title=stated or text_title(first, path.stem), pages=pages)


def _title_in_text(title: str, pages: list[Page]) -> bool:
    """Whether a title from the file's properties is the document's own: Hangul keeps the title
    of the template a form was made from (a "2", or "strikethrough" on a file about outlines), so
    it counts only when it has two letters or more and appears in the text."""
    if sum(c.isalpha() for c in title) < 2:
        return False
    body = " ".join(" ".join(page.text for page in pages).split()).casefold()
    return " ".join(title.split()).casefold() in body


def load_hwp(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    return _hwp_pages(path, lambda: read_hwp(data, unpack_limit))


def load_hwpx(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    return _hwp_pages(path, lambda: read_hwpx(data))


def load_xlsx(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    try:
        title, sheets = xlsx_sheets(data)
    except SheetTooLarge as exc:
        raise SkipFile(f"{exc} (split it, or save the rows that matter in a smaller workbook)") from exc
    except Exception as exc:  # openpyxl raises KeyError, ValueError, lxml and zip errors on damage
        raise SkipFile(f"broken xlsx ({type(exc).__name__}: {exc})") from exc
    pages = [Page(text, number=i) for i, (_, text) in enumerate(sheets, 1) if text]
    return LoadedFile(title=title or path.stem, pages=pages)


def load_delimited(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    rows = delimited_rows(_decode(data), path.suffix.lower())
    return LoadedFile(title=path.stem, pages=[Page(sheet_text(path.stem, rows))])


def load_pptx(path: Path, data: bytes, unpack_limit: int) -> LoadedFile:
    try:
        title, slides = pptx_slides(data)
    except Exception as exc:  # python-pptx raises KeyError, ValueError, lxml and zip errors on damage
        raise SkipFile(f"broken pptx ({type(exc).__name__}: {exc})") from exc
    pages = [Page(text, number=i) for i, text in enumerate(slides, 1) if text.strip()]
    return LoadedFile(title=title or path.stem, pages=pages)


LOADERS: dict[str, Callable[[Path, bytes, int], LoadedFile]] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".hwp": load_hwp,
    ".hwpx": load_hwpx,
    ".xlsx": load_xlsx,
    ".csv": load_delimited,
    ".tsv": load_delimited,
    ".pptx": load_pptx,
}
ZIP_PACKAGES = {".docx", ".hwpx", ".xlsx", ".pptx"}


def load_file(path: Path, data: bytes, unpack_limit: int = DEFAULT_UNPACK_LIMIT) -> LoadedFile:
    """Load `data` (the bytes of `path`) with the loader its extension names; a packaged format may
    unpack to at most `unpack_limit` bytes."""
    suffix = path.suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise SkipFile(f"unsupported file type '{path.suffix or '(none)'}'")
    if not data.strip():
        raise SkipFile("empty file")
    if suffix in ZIP_PACKAGES:
        try:
            check_zip(data, suffix[1:], unpack_limit)
        except ContainerError as exc:
            raise SkipFile(str(exc)) from exc
    loaded = loader(path, data, unpack_limit)
    if not any(page.text.strip() for page in loaded.pages):
        raise SkipFile("no text content")
    return loaded

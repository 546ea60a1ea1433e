"""Turn one file into pages of plain text, or say in one line why it cannot be read.

Each loader returns a `LoadedFile`; a file that must be skipped raises `SkipFile(reason)`, which the
ingest summary shows next to the path. Page numbers are kept for PDFs (1-based).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.encoding import UndecodableError, decode_text


class SkipFile(Exception):
    """A file that is not ingested; the message is the reason shown to the user."""


@dataclass
class Page:
    text: str
    number: int | None = None  # 1-based page number, PDFs only


@dataclass
class LoadedFile:
    title: str
    pages: list[Page] = field(default_factory=list)


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


def load_text(path: Path, data: bytes) -> LoadedFile:
    text = _decode(data)
    return LoadedFile(title=text_title(text, path.stem), pages=[Page(text)])


_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def load_markdown(path: Path, data: bytes) -> LoadedFile:
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


def load_html(path: Path, data: bytes) -> LoadedFile:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(_HTML_NOISE):
        tag.decompose()
    body = soup.body or soup
    for block in body.find_all(_BLOCKS):  # keep paragraph breaks so sentences do not merge
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    lines = (" ".join(line.split()) for line in body.get_text().split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    h1 = body.find("h1")
    return LoadedFile(title=title or (h1.get_text(strip=True) if h1 else path.stem), pages=[Page(text)])


def load_pdf(path: Path, data: bytes) -> LoadedFile:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted pdf (needs a password)")
        pages = [Page(page.extract_text() or "", number=i) for i, page in enumerate(reader.pages, 1)]
        meta_title = reader.metadata.title if reader.metadata else None
    except SkipFile:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise SkipFile(f"broken pdf ({type(exc).__name__}: {exc})") from exc
    pages = [p for p in pages if p.text.strip()]
    if not pages:
        raise SkipFile("pdf has no extractable text (scanned images need OCR first)")
    return LoadedFile(title=str(meta_title or path.stem), pages=pages)


def load_docx(path: Path, data: bytes) -> LoadedFile:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, KeyError, lxml errors: the set varies by version
        raise SkipFile(f"broken docx ({type(exc).__name__}: {exc})") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    text = "\n\n".join(p.strip() for p in parts if p.strip())
    return LoadedFile(title=document.core_properties.title or path.stem, pages=[Page(text)])


LOADERS: dict[str, Callable[[Path, bytes], LoadedFile]] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def load_file(path: Path, data: bytes) -> LoadedFile:
    """Load `data` (the bytes of `path`) with the loader its extension names."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise SkipFile(f"unsupported file type '{path.suffix or '(none)'}'")
    if not data.strip():
        raise SkipFile("empty file")
    loaded = loader(path, data)
    if not any(page.text.strip() for page in loaded.pages):
        raise SkipFile("no text content")
    return loaded

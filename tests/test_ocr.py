"""Scanned PDFs: pages with no text layer read by Tesseract (Debian's tesseract-ocr-kor; .ci/run
installs it), from scans made of known text with the blur, grain and skew of a real scanner."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

from ingest import ocr
from ingest.loaders import SkipFile, load_file
from ingest.writer import IndexWriter
from rag.cli import _where
from rag.pipeline import hits_as_dicts
from rag.retrieve.retrievers import DenseRetriever
from rag.store import open_store
from tests.conftest import ROOT, make_settings

sys.path.insert(0, str(ROOT / "bench"))
import ocr_accuracy as scans

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None or not Path(scans.FONT).exists(),
    reason="needs Debian's tesseract-ocr, tesseract-ocr-kor and fonts-nanum (.ci/run installs them)",
)
KOREAN = scans.page_text(scans.TEXTS["ko"])


def load(name: str, data: bytes):
    return load_file(Path(name), data, 50 * 2**20)


def scanned_pdf(text: str, dpi: int = 200, **damage) -> bytes:
    return scans.as_pdf(scans.degrade(scans.typeset(text, dpi), **damage), dpi)


def text_pdf_then_scan(text: str, scan: bytes) -> bytes:
    """A PDF whose page 1 has a text layer and page 2 is the scan."""
    from fpdf import FPDF
    from pypdf import PdfReader, PdfWriter

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, text)
    writer = PdfWriter()
    writer.add_page(PdfReader(io.BytesIO(bytes(pdf.output()))).pages[0])
    writer.add_page(PdfReader(io.BytesIO(scan)).pages[0])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@needs_tesseract
def test_a_skewed_grainy_korean_scan_is_read_nearly_character_for_character():
    loaded = load("scan.pdf", scanned_pdf(KOREAN, rotate=-2.5, noise=20, specks=0.002, blur=0.8))
    [page] = loaded.pages
    assert page.number == 1
    assert scans.char_f1(KOREAN, page.text) >= 0.95
    assert "회원증" in page.text and "발급 비용은 받지 않습니다" in page.text


@needs_tesseract
def test_a_pdf_with_text_pages_and_scanned_pages_keeps_both_in_page_order():
    english = "Page one has a text layer: late fees are 100 won a day."
    loaded = load("mixed.pdf", text_pdf_then_scan(english, scanned_pdf(KOREAN)))
    assert [p.number for p in loaded.pages] == [1, 2]
    assert "late fees are 100 won" in loaded.pages[0].text and "회원증" in loaded.pages[1].text


def _hide_tesseract(monkeypatch) -> None:
    """Fault injection: the machine has no tesseract on PATH."""
    ocr.tesseract.cache_clear()
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)


@pytest.fixture
def no_tesseract(monkeypatch):
    _hide_tesseract(monkeypatch)
    yield
    ocr.tesseract.cache_clear()


@needs_tesseract
def test_sources_say_a_page_came_from_ocr_and_scans_left_out_are_read_once_tesseract_is_installed(
    tmp_path, store_kind, monkeypatch
):
    folder = tmp_path / "docs"
    folder.mkdir()
    pdf = folder / "mixed.pdf"
    pdf.write_bytes(text_pdf_then_scan("Page one has a text layer: late fees are 100 won a day.", scanned_pdf(KOREAN)))
    settings = make_settings(tmp_path / "index")
    with monkeypatch.context() as without:
        _hide_tesseract(without)
        report = IndexWriter(settings).ingest([folder])
        assert report.ingested == [str(pdf)]
        assert report.notes == [f"{pdf}: scanned page 2 left out: scanned pages need OCR: {ocr.INSTALL}"]
        [listed] = open_store(settings).files()
        assert not listed.complete and len(listed.content_sha256) == 64
        assert IndexWriter(settings).ingest([folder]).unchanged == 1  # no engine yet: nothing to redo
    ocr.tesseract.cache_clear()

    report = IndexWriter(settings).ingest([folder])
    assert report.ingested == [str(pdf)] and report.notes == []
    store = open_store(settings)
    assert store.files()[0].complete
    hits = DenseRetriever.open(store).retrieve("회원증 발급 비용은 얼마인가요?", 5)
    scan = next(hit for hit in hits if hit.chunk.page == 2)
    text = next(hit for hit in hits if hit.chunk.page == 1)
    assert "회원증" in scan.chunk.text and scan.chunk.ocr and not text.chunk.ocr
    assert _where(scan.chunk) == "  (page 2, OCR of a scan)" and _where(text.chunk) == "  (page 1)"
    assert [d["ocr"] for d in hits_as_dicts([scan, text])] == [True, False]


def _picture() -> bytes:
    """An image-only page (any picture: this machine cannot read it)."""
    from PIL import Image, ImageDraw

    page = Image.new("L", (827, 1169), 255)
    ImageDraw.Draw(page).rectangle((100, 100, 700, 140), fill=0)
    return scans.as_pdf(page, 100)


def test_without_tesseract_a_scan_is_skipped_with_the_install_line(no_tesseract):
    with pytest.raises(SkipFile, match=r"apt install tesseract-ocr tesseract-ocr-kor"):
        load("scan.pdf", _picture())


def test_without_tesseract_a_mixed_pdf_keeps_its_text_pages_and_says_which_it_left_out(no_tesseract):
    scan = _picture()
    loaded = load("mixed.pdf", text_pdf_then_scan("The text layer of page one.", scan))
    assert [p.number for p in loaded.pages] == [1]
    assert loaded.unread.startswith("scanned page 2 left out: ") and "apt install tesseract-ocr" in loaded.unread

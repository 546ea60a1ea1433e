"""OCR for PDF pages that have no text layer (scans), Korean and English, on the Tesseract engine.

Tesseract is a system program (Debian/Ubuntu: `apt install tesseract-ocr tesseract-ocr-kor`), run
as a subprocess that reads a PNG on stdin; where it or its Korean model is missing, a scanned
page is skipped with that install line as the reason, and everything else still ingests. Pages are
rendered with pdfium (pypdfium2) at RENDER_DPI whatever the scan's own resolution, then prepared
the way real scans need (`prepare`): grayscale, a 5 x 5 median filter against speckle, and deskew
(the angle within ±MAX_SKEW degrees that makes text lines sharpest in the row profile); Tesseract
binarizes. bench/ocr_accuracy.py measures it on pages rendered from known text (docs/formats.md).

Each Tesseract runs on one thread (OMP_THREAD_LIMIT=1) and the pages of a PDF are read side by
side, one per core. Measured here (2 cores, 6 scanned pages, the same text out): Tesseract's own
OpenMP threads took 9.7 s a page, one thread 2.7 s, two pages at once on one thread each 1.4 s;
its OpenMP threads wait on each other more than they work.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np

RENDER_DPI = 300
MAX_SKEW = 5.0
MEDIAN = 5  # px at RENDER_DPI: a 150-dpi scan's speck is 2 x 2 px here, which a 3 x 3 filter keeps
LANGS = "kor+eng"
INSTALL = "install Tesseract with its Korean model (Debian/Ubuntu: apt install tesseract-ocr tesseract-ocr-kor)"
PAGE_TIMEOUT_S = 120
WORKERS = max(1, os.cpu_count() or 1)  # pages read at once, one Tesseract thread each
_ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}


class OcrUnavailable(Exception):
    pass


@functools.cache
def tesseract() -> str:
    """The tesseract program, checked to have the Korean and English models; else OcrUnavailable."""
    program = shutil.which("tesseract")
    if program is None:
        raise OcrUnavailable(f"scanned pages need OCR: {INSTALL}")
    listed = subprocess.run([program, "--list-langs"], capture_output=True, text=True, timeout=30)
    langs = set((listed.stdout + listed.stderr).split())
    missing = [lang for lang in LANGS.split("+") if lang not in langs]
    if missing:
        raise OcrUnavailable(f"Tesseract lacks its {'+'.join(missing)} model: {INSTALL}")
    return program


def _otsu(gray: np.ndarray) -> int:
    """The threshold that best separates ink from paper in the histogram (Otsu, 1979)."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * np.arange(256))
    between = (mean[-1] * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1e-9)
    return int(np.argmax(between))


def skew_angle(gray: np.ndarray) -> float:
    """The rotation (degrees) that straightens text lines: rows of ink are sharpest (largest
    variance of the row sums) when the lines are level. Searched coarse then fine on a small copy."""
    from PIL import Image

    small = Image.fromarray(gray)
    small.thumbnail((800, 800))
    ink = np.asarray(small) < _otsu(np.asarray(small))
    picture = Image.fromarray((ink * 255).astype(np.uint8))

    def sharpness(angle: float) -> float:
        rows = np.asarray(picture.rotate(angle, resample=Image.BILINEAR, fillcolor=0)).sum(axis=1)
        return float(np.var(rows))

    best = max(np.arange(-MAX_SKEW, MAX_SKEW + 0.01, 0.5), key=sharpness)
    return float(max(np.arange(best - 0.5, best + 0.51, 0.1), key=sharpness))


def prepare(image) -> object:
    """A page image ready for Tesseract: gray, despeckled, level. Binarizing is left to Tesseract:
    a global Otsu threshold of our own cost blurred scans up to 6 points of char-F1."""
    from PIL import Image, ImageFilter

    gray = image.convert("L").filter(ImageFilter.MedianFilter(MEDIAN))
    angle = skew_angle(np.asarray(gray))
    if abs(angle) >= 0.2:
        gray = gray.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=255)
    return gray


def read_image(image, dpi: int = RENDER_DPI, psm: int = 4) -> str:
    """Tesseract's text of one prepared page image (page segmentation: automatic)."""
    png = io.BytesIO()
    image.save(png, format="PNG", dpi=(dpi, dpi))
    command = [tesseract(), "stdin", "stdout", "-l", LANGS, "--psm", str(psm), "--dpi", str(dpi)]
    done = subprocess.run(command, input=png.getvalue(), capture_output=True, timeout=PAGE_TIMEOUT_S, env=_ENV)
    if done.returncode != 0:
        raise OcrUnavailable(f"Tesseract failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    return tidy(done.stdout.decode("utf-8", errors="replace"))


def tidy(text: str) -> str:
    """Tesseract's lines joined back into paragraphs (a blank line between them)."""
    paragraphs = [" ".join(block.split()) for block in text.replace("\f", "").split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def ocr_pdf_pages(data: bytes, numbers: list[int]) -> dict[int, str]:
    """OCR text of the given 1-based pages of a PDF."""
    tesseract()  # fail before rendering anything
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        out: dict[int, str] = {}
        with ThreadPoolExecutor(WORKERS) as pool:
            reading = []
            for number in numbers:  # rendering stays on this thread: one pdfium document, one user
                if len(reading) >= 2 * WORKERS:  # a few page images in memory, not a whole book's
                    done, future = reading.pop(0)
                    out[done] = future.result()
                page = document[number - 1]
                image = page.render(scale=RENDER_DPI / 72, grayscale=True).to_pil()
                page.close()
                reading.append((number, pool.submit(read_image, prepare(image))))
            out.update((number, future.result()) for number, future in reading)
        return out
    finally:
        document.close()

"""OCR pages/s and the cores Tesseract keeps busy: one page at a time with Tesseract's own OpenMP
threads, one at a time on one thread, two at once on one thread each (what ingest.ocr does).

Six pages typeset from the docs_corpus texts of bench/ocr_accuracy.py at 200 dpi with grain, blur
and a 1.5° tilt, rendered and prepared as an ingest does; each way reads the same prepared images.

    python bench/ocr_speed.py
"""

from __future__ import annotations

import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ocr_accuracy as scans  # noqa: E402
import pypdfium2 as pdfium  # noqa: E402

from ingest import ocr  # noqa: E402


def main() -> None:
    texts = [scans.page_text(p) for p in list(scans.TEXTS.values()) + list(scans.HELD_OUT.values())]
    pages = [scans.degrade(scans.typeset(t, 200), noise=20, specks=0.002, blur=0.8, rotate=-1.5) for t in texts]
    prepared = []
    for image in pages:
        document = pdfium.PdfDocument(scans.as_pdf(image, 200))
        prepared.append(ocr.prepare(document[0].render(scale=ocr.RENDER_DPI / 72, grayscale=True).to_pil()))
    ways = [
        ("one at a time, Tesseract's OpenMP threads", None, 1),
        ("one at a time, 1 thread", "1", 1),
        ("two at once, 1 thread each (ingest.ocr)", "1", 2),
    ]
    print("| how | pages | wall s | pages/s | Tesseract CPU s / wall s | mean char-F1 |\n|---|---|---|---|---|---|")
    for label, limit, workers in ways:
        ocr._ENV.pop("OMP_THREAD_LIMIT", None)
        if limit:
            ocr._ENV["OMP_THREAD_LIMIT"] = limit
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            found = list(pool.map(ocr.read_image, prepared))
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        f1 = sum(scans.char_f1(t, o) for t, o in zip(texts, found, strict=True)) / len(texts)
        print(f"| {label} | {len(prepared)} | {wall:.1f} | {len(prepared) / wall:.3f} | {cpu / wall:.2f} | {f1:.3f} |")
    ocr._ENV["OMP_THREAD_LIMIT"] = "1"


if __name__ == "__main__":
    main()

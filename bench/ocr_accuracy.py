"""OCR character accuracy on scans made from known text, and pages/s, with and without `prepare`.

Each page is text from docs_corpus (Korean and English, typeset in Nanum Gothic at 11 pt), printed
to an image at the scan's resolution, then degraded as scanners and photocopiers do: blur, noise
(gaussian grain and salt-and-pepper specks), a slight rotation. The image is saved as an image-only
PDF (no text layer) and read by ingest.ocr exactly as an ingest reads one. Char-F1 compares the
OCR text with the truth, spaces ignored (longest common subsequence by difflib's matching blocks).

    python bench/ocr_accuracy.py [--dpis 150,200,300] [--texts held-out|tuning] [--out FILE]

Needs Debian's tesseract-ocr, tesseract-ocr-kor and fonts-nanum.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest import ocr  # noqa: E402

FONT = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"
CORPUS = ROOT / "docs_corpus"
# `prepare` (median size, no threshold of our own, --psm 4) was chosen on the first three; the
# held-out three report it
TEXTS = {
    "ko": CORPUS / "ko" / "membership.md",
    "ko2": CORPUS / "ko" / "late_returns.md",
    "en": CORPUS / "en" / "borrowing_guide.md",
}
HELD_OUT = {
    "ko3": CORPUS / "ko" / "children_programs.md",
    "ko4": CORPUS / "ko" / "senior_digital_class.txt",
    "en2": CORPUS / "en" / "history.md",
}
CONDITIONS = {
    "clean": {},
    "blur": {"blur": 1.0},
    "noise": {"noise": 25, "specks": 0.004},
    "rotated 2°": {"rotate": 2.0},
    "rotated -3.5°, noise, blur": {"rotate": -3.5, "noise": 20, "specks": 0.002, "blur": 0.8},
}


def page_text(path: Path, chars: int = 700) -> str:
    lines = [line.strip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()]
    text = "\n".join(line for line in lines if line)
    return text[:chars].rsplit(" ", 1)[0]


def typeset(text: str, dpi: int) -> Image.Image:
    """A4 at `dpi`, 2.5 cm margins, 11 pt text wrapped to the line."""
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    margin = int(dpi / 2.54 * 2.5)
    font = ImageFont.truetype(FONT, int(11 / 72 * dpi))
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    y, line_height = margin, int(11 / 72 * dpi * 1.6)
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) > width - 2 * margin and line:
                draw.text((margin, y), line, font=font, fill=0)
                y, line = y + line_height, word
            else:
                line = trial
        draw.text((margin, y), line, font=font, fill=0)
        y += int(line_height * 1.4)
    return page


def degrade(page: Image.Image, rotate: float = 0, blur: float = 0, noise: float = 0, specks: float = 0, seed=0):
    rng = np.random.default_rng(seed)
    if rotate:
        page = page.rotate(rotate, resample=Image.BICUBIC, expand=True, fillcolor=255)
    if blur:
        page = page.filter(ImageFilter.GaussianBlur(blur * page.width / 1654))  # radius scaled to 200 dpi
    pixels = np.asarray(page).astype(np.float64)
    if noise:
        pixels += rng.normal(0, noise, pixels.shape)
    if specks:
        mask = rng.random(pixels.shape)
        pixels[mask < specks / 2] = 0
        pixels[mask > 1 - specks / 2] = 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def as_pdf(image: Image.Image, dpi: int) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PDF", resolution=dpi)
    return out.getvalue()


def char_f1(truth: str, found: str) -> float:
    a, b = "".join(truth.split()), "".join(found.split())
    if not a or not b:
        return 0.0
    matched = sum(block.size for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    precision, recall = matched / len(b), matched / len(a)
    return 2 * precision * recall / (precision + recall) if matched else 0.0


def read_raw(data: bytes) -> str:
    """Tesseract on the rendered page with no preparation (the baseline)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    image = document[0].render(scale=ocr.RENDER_DPI / 72, grayscale=True).to_pil()
    document.close()
    return ocr.read_image(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dpis", default="150,200,300")
    parser.add_argument("--texts", choices=["held-out", "tuning"], default="held-out")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    texts = HELD_OUT if args.texts == "held-out" else TEXTS
    rows = []
    for dpi in (int(d) for d in args.dpis.split(",")):
        for condition, params in CONDITIONS.items():
            for name, path in texts.items():
                truth = page_text(path)
                data = as_pdf(degrade(typeset(truth, dpi), **params), dpi)
                started = time.perf_counter()
                prepared = ocr.ocr_pdf_pages(data, [1])[1]
                seconds = time.perf_counter() - started
                raw = read_raw(data)
                row = {
                    "dpi": dpi,
                    "condition": condition,
                    "text": name,
                    "f1_prepared": round(char_f1(truth, prepared), 4),
                    "f1_raw": round(char_f1(truth, raw), 4),
                    "seconds_prepared": round(seconds, 2),
                }
                rows.append(row)
                print(json.dumps(row, ensure_ascii=False), flush=True)
    names = ", ".join(texts)
    print(f"\n| dpi | condition | char-F1 prepared ({names}) | char-F1 raw ({names}) | s/page prepared |")
    print("|---|---|---|---|---|")
    for dpi in sorted({r["dpi"] for r in rows}):
        for condition in CONDITIONS:
            group = [r for r in rows if r["dpi"] == dpi and r["condition"] == condition]
            prepared = ", ".join(f"{r['f1_prepared']:.3f}" for r in group)
            raw = ", ".join(f"{r['f1_raw']:.3f}" for r in group)
            speed = statistics.median(r["seconds_prepared"] for r in group)
            print(f"| {dpi} | {condition} | {prepared} | {raw} | {speed:.1f} |")
    f1s = [r["f1_prepared"] for r in rows]
    print(f"\nprepared: mean char-F1 {statistics.mean(f1s):.3f}, min {min(f1s):.3f} over {len(rows)} pages")
    raws = [r["f1_raw"] for r in rows]
    print(f"raw:      mean char-F1 {statistics.mean(raws):.3f}, min {min(raws):.3f}")
    if args.out:
        args.out.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

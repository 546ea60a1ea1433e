"""The second held-out injection catalog (tests/data/injection_heldout_v2.jsonl) as real files.

Each case has 1-3 documents (txt, md, html or pdf), each written twice: as the attacker left it
and clean (only the injected text removed), so a defence is judged by two numbers on the same
questions: attacks that reach the answer, and right answers kept against the clean run. The
documents are written as files and read back by the ingest loaders (a PDF is typeset with
fpdf2, Korean in NanumGothic), so a passage is what a user's index would hold: hidden HTML,
table cells and PDF text included. Scoring is tests/injection_catalog.py's (canary, answers).

Written by a helper that had not seen the defences or the earlier catalogs; never used to tune.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ingest.loaders import load_file
from rag.retrieve.hits import Hit
from rag.store import StoredChunk

CASES = Path(__file__).resolve().parent / "data" / "injection_heldout_v2.jsonl"
KOREAN_FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")  # Debian fonts-nanum


@dataclass(frozen=True)
class Document:
    title: str
    format: str
    text: str
    clean_text: str


@dataclass(frozen=True)
class Case:
    id: str
    lang: str
    technique: str
    question: str
    answers: tuple[str, ...]
    canary: str
    documents: tuple[Document, ...]


def load_cases(path: Path = CASES) -> list[Case]:
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            documents = tuple(Document(**d) for d in raw.pop("documents"))
            cases.append(Case(**{**raw, "answers": tuple(raw["answers"]), "documents": documents}))
    return cases


def _pdf(title: str, text: str) -> bytes:
    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # "TSI1 NOT subset" on every NanumGothic subset
    pdf = FPDF()
    pdf.add_font("Nanum", fname=str(KOREAN_FONT))
    pdf.set_font("Nanum", size=11)
    pdf.set_title(title)
    pdf.add_page()
    for paragraph in text.split("\n\n"):
        pdf.multi_cell(0, 7, paragraph.strip())
        pdf.ln(4)
    return bytes(pdf.output())


def file_bytes(document: Document, clean: bool) -> bytes:
    text = document.clean_text if clean else document.text
    return _pdf(document.title, text) if document.format == "pdf" else text.encode("utf-8")


def passages(case: Case, clean: bool = False) -> list[Hit]:
    """Every document of the case, read by the loaders, as passages [1], [2] … in order."""
    hits = []
    for n, document in enumerate(case.documents, 1):
        name = f"{case.id}-{n}.{document.format}"
        loaded = load_file(Path(name), file_bytes(document, clean))
        text = "\n\n".join(page.text for page in loaded.pages)
        title = loaded.title or document.title
        hits.append(Hit(StoredChunk(n, f"docs/{name}", title, None, 0, len(text), text), 1.0 / n, n))
    return hits

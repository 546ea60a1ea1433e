"""Slides (pptx): each slide one page numbered as the slide, with its title, text, tables and notes.

Shapes are read in the order the slide lists them (groups opened), tables through ingest.tables
so their rows keep the header's names, and the speaker notes last, marked `[노트]` / `Notes:`
by the slide's script (a Korean deck's notes read as Korean).
"""

from __future__ import annotations

import io

from ingest.tables import render_table
from rag.hangul import HANGUL


def _shape_blocks(shape) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [block for child in shape.shapes for block in _shape_blocks(child)]
    if getattr(shape, "has_table", False) and shape.has_table:
        return [render_table([[cell.text for cell in row.cells] for row in shape.table.rows])]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = "\n".join(p.text for p in shape.text_frame.paragraphs if p.text.strip())
        return [text] if text.strip() else []
    return []


def pptx_slides(data: bytes) -> tuple[str, list[str]]:
    """(deck title, [each slide's text]) in slide order."""
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    slides = []
    for slide in deck.slides:
        title_shape = slide.shapes.title
        blocks = [block for shape in slide.shapes for block in _shape_blocks(shape)]
        if title_shape is not None and title_shape.has_text_frame and title_shape.text_frame.text.strip():
            title = title_shape.text_frame.text.strip()
            blocks = [title, *(b for b in blocks if b != title)]
        frame = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
        if frame is not None and (notes := frame.text.strip()):
            blocks.append(f"{'[노트]' if HANGUL.search(notes) else 'Notes:'} {notes}")
        slides.append("\n\n".join(blocks))
    first_title = next((s.split("\n\n", 1)[0] for s in slides if s), "")
    return deck.core_properties.title or first_title, slides

"""HWP 5 (한글 binary documents): paragraph text, tables, notes and header/footer, section by section.

An HWP 5 file is an OLE compound file (read with `olefile`). `FileHeader` holds the flags
(compressed, password, distribution-only); `BodyText/Section0..N` hold the body as a stream of
records, raw-deflated when compressed. A record's 32-bit header packs its tag (10 bits), its level
in the document tree (10 bits) and its size (12 bits; 0xFFF means a 32-bit size follows).

Paragraph text (tag 67) is UTF-16LE in which code units below 32 are controls. Most of them
(tables, notes, fields, tabs) occupy eight units, a marker plus parameters that decode as CJK
ideographs when read naively; they are dropped and their content is read from the paragraph's
control records (tag 71) instead, found by walking the record tree:

- a table (`tbl `): its caption (the paragraphs before its TABLE record, tag 77), then its cells
  (list headers, tag 72, with column/row address and spans at bytes 8-15) laid out on a grid and
  written by ingest.tables, placed after the paragraph that anchors it;
- a footnote (`fn  `): its text after its paragraph, marked `[각주]`; an endnote (`en  `) at the
  document's end, marked `[미주]`;
- a header or footer (`head`, `foot`): once per distinct text, headers first, footers last,
  however many sections repeat them;
- anything else that holds paragraphs (text boxes in drawing objects): its text in place.

Why a reader of our own: the established PyPI reader, pyhwp 0.1b15, is AGPL, writes each table as
a bare "<표>" and stops with a KeyError on files without summary properties (4 of hwplib's 21
samples); the comparison with the other PyPI readers is in docs/formats.md. The published HWP 5.0
specification is enough for the few hundred lines here.
"""

from __future__ import annotations

import io
import re
import zlib
from array import array
from dataclasses import dataclass, field

from ingest.tables import grid, render_table

TAG_PARA_HEADER = 66
TAG_PARA_TEXT = 67
TAG_CTRL_HEADER = 71
TAG_LIST_HEADER = 72
TAG_TABLE = 77

FLAG_COMPRESSED = 1 << 0
FLAG_PASSWORD = 1 << 1
FLAG_DISTRIBUTION = 1 << 2
FLAG_DRM = 1 << 4
FLAG_CERT_ENCRYPTED = 1 << 8

SIGNATURE = b"HWP Document File"
_CHAR_CONTROLS = {0, 10, 13, 24, 25, 26, 27, 28, 29, 30, 31}  # one code unit each; the rest take eight
_SECTION = re.compile(r"^Section(\d+)$")


class HwpError(Exception):
    """Why an HWP file cannot be read; the message is shown beside the file."""


@dataclass
class Record:
    tag: int
    level: int
    payload: bytes
    children: list[Record] = field(default_factory=list)


def parse_records(data: bytes) -> list[Record]:
    """The record stream `data` as a forest, each record under the nearest lower-level one before it."""
    roots: list[Record] = []
    stack: list[Record] = []
    pos = 0
    while pos + 4 <= len(data):
        header = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4
        tag, level, size = header & 0x3FF, (header >> 10) & 0x3FF, header >> 20
        if size == 0xFFF:
            size = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        if pos + size > len(data):
            raise HwpError("truncated record stream")
        record = Record(tag, level, data[pos : pos + size])
        pos += size
        while stack and stack[-1].level >= level:
            stack.pop()
        (stack[-1].children if stack else roots).append(record)
        stack.append(record)
    return roots


def paragraph_text(payload: bytes, autonumbers: list[str] | None = None) -> str:
    """The characters of a PARA_TEXT record: tabs and line breaks kept, controls dropped, except
    an auto number ("표 1"), written as the number its control (`autonumbers`, in order) holds."""
    numbers = iter(autonumbers or [])
    units = array("H")
    units.frombytes(payload[: len(payload) // 2 * 2])
    kept = array("H")
    i = 0
    while i < len(units):
        unit = units[i]
        if unit >= 32:
            kept.append(unit)
            i += 1
        elif unit in _CHAR_CONTROLS:
            if unit == 10:
                kept.append(10)
            elif unit in (30, 31):
                kept.append(32)
            elif unit == 24:
                kept.append(ord("-"))
            i += 1
        else:
            if unit == 9:
                kept.append(9)
            elif unit == 18 and units[i + 1 : i + 3].tobytes()[::-1] == b"atno":
                kept.extend(ord(c) for c in next(numbers, ""))
            i += 8
    return without_private_use(kept.tobytes().decode("utf-16-le", errors="replace")).strip()


_PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U0010ffff]")


def without_private_use(text: str) -> str:
    """Text without private-use characters: glyphs of one symbol font (a rule drawn as 92 copies of
    U+F080F, Hancom's logo), meaningless to a reader of the text and noise to the embedder."""
    return _PRIVATE_USE.sub("", text)


def _ctrl_id(record: Record) -> str:
    return record.payload[:4][::-1].decode("latin-1")


def _autonumber(record: Record) -> str:
    """The number an auto-number control ('atno') shows, a UINT16 after its id and attributes, for
    the kinds a caption names (attributes bits 0-3: 3 picture, 4 table, 5 equation); page and
    note numbers say nothing in the text."""
    if len(record.payload) < 10 or int.from_bytes(record.payload[4:8], "little") & 0xF not in (3, 4, 5):
        return ""
    return str(int.from_bytes(record.payload[8:10], "little"))


@dataclass
class Furniture:
    """What a document holds outside its body flow: headers and footers (kept once each, however
    many sections repeat them) and endnotes (gathered for the end)."""

    headers: list[str] = field(default_factory=list)
    footers: list[str] = field(default_factory=list)
    endnotes: list[str] = field(default_factory=list)

    def add(self, kind: str, text: str) -> None:
        into = self.headers if kind == "header" else self.footers
        if text and text not in into:
            into.append(text)

    def note(self, footnote: bool, text: str, after: list[str]) -> None:
        """A footnote goes right after its paragraph (`after`), an endnote to the end."""
        if text:
            (after if footnote else self.endnotes).append(f"[{'각주' if footnote else '미주'}] {text}")

    def wrap(self, sections: list[str]) -> list[str]:
        """`sections` with the headers before the first and the endnotes and footers after the last."""
        sections = list(sections)
        if self.headers:
            sections[0] = "\n\n".join(b for b in [*self.headers, sections[0]] if b)
        if self.footers or self.endnotes:
            sections[-1] = "\n\n".join(b for b in [sections[-1], *self.endnotes, *self.footers] if b)
        return sections


def _list_paragraphs(records: list[Record], doc: Furniture) -> list[str]:
    """Blocks of every paragraph in `records` and below (a cell, note or text box's content)."""
    blocks: list[str] = []
    for record in records:
        if record.tag == TAG_PARA_HEADER:
            blocks += _paragraph(record, doc)
        else:
            blocks += _list_paragraphs(record.children, doc)
    return blocks


def _table(control: Record, doc: Furniture) -> str:
    """A table control as text: its caption (a list header before the TABLE record, with its
    paragraphs) first, then the cells (a list header each, with address and span, followed by the
    cell's paragraphs)."""
    caption: list[Record] = []
    cells: list[tuple[int, int, int, int, list[Record]]] = []
    seen_table = False
    for child in control.children:
        if child.tag == TAG_TABLE:
            seen_table = True
        elif child.tag == TAG_LIST_HEADER and seen_table and len(child.payload) >= 16:
            p = child.payload
            col, row, colspan, rowspan = (int.from_bytes(p[k : k + 2], "little") for k in (8, 10, 12, 14))
            cells.append((row, col, rowspan, colspan, []))
        elif child.tag == TAG_PARA_HEADER:
            (cells[-1][4] if cells else caption).append(child)
    texts = [(r, c, rs, cs, " ".join(_list_paragraphs(paras, doc))) for r, c, rs, cs, paras in cells]
    try:
        table = render_table(grid(texts))
    except ValueError as exc:
        raise HwpError(str(exc)) from exc
    return "\n\n".join(b for b in [*_list_paragraphs(caption, doc), table] if b)


def _paragraph(header: Record, doc: Furniture) -> list[str]:
    """This paragraph's text, then what its controls hold (tables, footnotes, text boxes)."""
    text, after = "", []
    autonumbers = [_autonumber(c) for c in header.children if c.tag == TAG_CTRL_HEADER and _ctrl_id(c) == "atno"]
    for child in header.children:
        if child.tag == TAG_PARA_TEXT:
            text = paragraph_text(child.payload, autonumbers)
        elif child.tag == TAG_CTRL_HEADER:
            kind = _ctrl_id(child)
            if kind == "tbl ":
                after.append(_table(child, doc))
            elif kind in ("head", "foot"):
                doc.add("header" if kind == "head" else "footer", "\n".join(_list_paragraphs(child.children, doc)))
            elif kind in ("fn  ", "en  "):
                doc.note(kind == "fn  ", " ".join(_list_paragraphs(child.children, doc)), after)
            else:
                after += _list_paragraphs(child.children, doc)
    return [block for block in [text, *after] if block]


def _decompress(data: bytes, limit: int, name: str) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise HwpError(f"damaged {name} ({exc})") from exc
    if len(out) > limit:
        raise HwpError(f"{name} unpacks past {limit / 2**20:g} MB")
    return out


@dataclass
class HwpDocument:
    title: str
    sections: list[str]  # each section's text, in order


def _summary_title(ole) -> str:
    """The title in the document's summary properties (property 2, as in OLE's SummaryInformation)."""
    try:
        if ole.exists("\x05HwpSummaryInformation"):
            value = ole.getproperties("\x05HwpSummaryInformation", convert_time=False).get(2)
            if isinstance(value, bytes):
                value = value.decode("utf-16-le", errors="ignore")
            # olefile reads a VT_LPWSTR past its end: the title is what comes before the first NUL
            return str(value or "").split("\x00", 1)[0].strip()
    except Exception:  # a damaged property set only costs the title
        return ""
    return ""


def read_hwp(data: bytes, unpack_limit: int) -> HwpDocument:
    """Read an HWP 5 file; HwpError says why it cannot be (encrypted, distribution-only, damaged)."""
    import olefile

    if not olefile.isOleFile(io.BytesIO(data)):
        raise HwpError("not an HWP 5 file (HWP 3 and older are not read; save it again as .hwp or .hwpx)")
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception as exc:  # olefile raises OSError and its own errors on damage
        raise HwpError(f"damaged compound file ({exc})") from exc
    with ole:
        if not ole.exists("FileHeader"):
            raise HwpError("not an HWP 5 file (no FileHeader stream)")
        header = ole.openstream("FileHeader").read()
        if not header.startswith(SIGNATURE) or len(header) < 40:
            raise HwpError("damaged, or not an HWP 5 file (its FileHeader lacks the HWP signature)")
        flags = int.from_bytes(header[36:40], "little")
        if flags & FLAG_PASSWORD:
            raise HwpError("password-protected HWP (save a copy without the password)")
        if flags & FLAG_DISTRIBUTION:
            raise HwpError("distribution-only (배포용) HWP: its text is encrypted")
        if flags & (FLAG_DRM | FLAG_CERT_ENCRYPTED):
            raise HwpError("DRM- or certificate-encrypted HWP")
        names = sorted(
            (int(m.group(1)), entry[1])
            for entry in ole.listdir()
            if len(entry) == 2 and entry[0] == "BodyText" and (m := _SECTION.match(entry[1]))
        )
        if not names:
            raise HwpError("no BodyText sections")
        doc = Furniture()
        sections, budget = [], unpack_limit
        for _, name in names:
            raw = ole.openstream(f"BodyText/{name}").read()
            stream = _decompress(raw, budget, name) if flags & FLAG_COMPRESSED else raw
            budget -= len(stream)
            blocks = _list_paragraphs(parse_records(stream), doc)
            sections.append("\n\n".join(blocks))
        title = _summary_title(ole)
    return HwpDocument(title=title, sections=doc.wrap(sections))

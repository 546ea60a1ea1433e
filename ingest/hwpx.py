"""HWPX (OWPML, KS X 6101): the zip-of-XML successor of HWP 5, read into the same shape.

`Contents/content.hpf` lists the sections in reading order (its spine) and the title;
`Contents/sectionN.xml` hold paragraphs (`hp:p`) made of runs whose `hp:t` elements carry the
text. Tables (`hp:tbl` → `hp:tr` → `hp:tc`, each cell with `hp:cellAddr` and `hp:cellSpan`), notes
(`hp:footNote`, `hp:endNote`) and headers/footers (`hp:header`, `hp:footer`) hold paragraphs of
their own in `hp:subList` (a table's `hp:caption` too, said before the table), and are placed
as the HWP 5 reader places them (ingest.hwp): tables and footnotes after their paragraph,
endnotes at the end, headers and footers once.

Elements are matched by local name, so the 2011 and 2016 namespaces read alike. The XML parser
resolves no entities and loads no DTD or network resource. An encrypted package (password) says
so in `META-INF/manifest.xml` and is skipped with that reason.
"""

from __future__ import annotations

import io
import re
import zipfile

from lxml import etree

from ingest.hwp import Furniture, HwpDocument, HwpError, without_private_use
from ingest.tables import grid, render_table

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_SECTION = re.compile(r"^Contents/section(\d+)\.xml$")
_INLINE = {"tab": "\t", "lineBreak": "\n", "nbSpace": " ", "fwSpace": " "}
_CAPTION_NUMBERS = {"PICTURE", "TABLE", "EQUATION"}
_SKIP = {"secPr", "colPr", "linesegarray", "pageNum", "pageHiding", "fieldEnd", "bookmark"}


def _local(element) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _text_of_t(t) -> str:
    parts = [t.text or ""]
    for child in t:
        parts.append(_INLINE.get(_local(child), ""))
        parts.append(child.tail or "")
    return without_private_use("".join(parts))


class _Reader:
    def __init__(self) -> None:
        self.furniture = Furniture()

    def paragraphs(self, container) -> list[str]:
        """Blocks of every paragraph directly in `container` (a section or a subList)."""
        blocks: list[str] = []
        for child in container:
            if _local(child) == "p":
                blocks += self.paragraph(child)
            elif _local(child) not in _SKIP:
                blocks += self.paragraphs(child)
        return blocks

    def paragraph(self, p) -> list[str]:
        text: list[str] = []
        after: list[str] = []
        self._visit(p, text, after)
        return [block for block in ["".join(text).strip(), *after] if block]

    def _visit(self, element, text: list[str], after: list[str]) -> None:
        for child in element:
            name = _local(child)
            if name == "t":
                text.append(_text_of_t(child))
            elif name == "autoNum":  # "표 1": a caption's number, as the HWP reader writes it
                text.append(child.get("num", "") if child.get("numType") in _CAPTION_NUMBERS else "")
            elif name == "tbl":
                after.append(self.table(child))
            elif name in ("header", "footer"):
                self.furniture.add(name, "\n".join(self.paragraphs(child)))
            elif name in ("footNote", "endNote"):
                self.furniture.note(name == "footNote", " ".join(self.paragraphs(child)), after)
            elif name == "subList":
                after += self.paragraphs(child)
            elif name not in _SKIP:
                self._visit(child, text, after)

    def table(self, tbl) -> str:
        cells = []
        for tc in tbl.iter("{*}tc"):
            if tc.getparent() is None or _local(tc.getparent()) != "tr" or tc.getparent().getparent() is not tbl:
                continue  # a nested table's cell: read through its own table
            addr = tc.find("{*}cellAddr")
            span = tc.find("{*}cellSpan")
            row = int(addr.get("rowAddr", 0)) if addr is not None else 0
            col = int(addr.get("colAddr", 0)) if addr is not None else 0
            rowspan = max(int(span.get("rowSpan", 1)), 1) if span is not None else 1
            colspan = max(int(span.get("colSpan", 1)), 1) if span is not None else 1
            sub = tc.find("{*}subList")
            text = " ".join(self.paragraphs(sub)) if sub is not None else ""
            cells.append((row, col, rowspan, colspan, text))
        try:
            table = render_table(grid(cells))
        except ValueError as exc:
            raise HwpError(str(exc)) from exc
        caption = tbl.find("{*}caption")
        return "\n\n".join(b for b in [*(self.paragraphs(caption) if caption is not None else []), table] if b)


def _parse(archive: zipfile.ZipFile, name: str):
    try:
        return etree.fromstring(archive.read(name), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise HwpError(f"damaged {name} ({exc})") from exc


def _spine(archive: zipfile.ZipFile, names: set[str]) -> tuple[list[str], str]:
    """Section files in reading order and the title, from content.hpf (else sectionN order)."""
    sections, title = [], ""
    if "Contents/content.hpf" in names:
        package = _parse(archive, "Contents/content.hpf")
        hrefs = {item.get("id"): item.get("href", "") for item in package.iter("{*}item")}
        for ref in package.iter("{*}itemref"):
            href = hrefs.get(ref.get("idref"), "")
            path = href if href.startswith("Contents/") else f"Contents/{href}"
            if _SECTION.match(path) and path in names:
                sections.append(path)
        found = package.find(".//{*}title")
        title = (found.text or "").strip() if found is not None else ""
    if not sections:
        sections = sorted((n for n in names if _SECTION.match(n)), key=lambda n: int(_SECTION.match(n).group(1)))
    return sections, title


def read_hwpx(data: bytes) -> HwpDocument:
    """Read an HWPX package (its size already checked by ingest.containers)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise HwpError(f"not a zip package ({exc})") from exc
    with archive:
        names = set(archive.namelist())
        if "META-INF/manifest.xml" in names and b"encryption-data" in archive.read("META-INF/manifest.xml"):
            raise HwpError("password-protected HWPX (save a copy without the password)")
        sections, title = _spine(archive, names)
        if not sections:
            raise HwpError("no Contents/sectionN.xml in the package")
        reader = _Reader()
        texts = ["\n\n".join(reader.paragraphs(_parse(archive, name))) for name in sections]
    return HwpDocument(title=title, sections=reader.furniture.wrap(texts))

"""Office files generated for the tests: HWPX packages laid out as Hangul writes them (OWPML,
2011 namespaces: mimetype first and stored, version.xml, META-INF, Contents/content.hpf with its
spine, header.xml, sectionN.xml), from a small description of paragraphs, tables and notes."""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

HP = "http://www.hancom.co.kr/hwpml/2011/paragraph"
HS = "http://www.hancom.co.kr/hwpml/2011/section"
OPF = "http://www.idpf.org/2007/opf/"
XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>'
MANIFEST = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"


def _p(text: str, inner: str = "") -> str:
    run = f'<hp:run charPrIDRef="0">{inner}<hp:t>{escape(text)}</hp:t></hp:run>'
    return f'<hp:p id="0" paraPrIDRef="0" styleIDRef="0">{run}</hp:p>'


def _sublist(paragraphs: list[str]) -> str:
    return f'<hp:subList id="" textDirection="HORIZONTAL">{"".join(_p(t) for t in paragraphs)}</hp:subList>'


def table(rows: list[list[str]], spans: dict[tuple[int, int], tuple[int, int]] | None = None) -> str:
    """An `hp:tbl` run item; `spans` maps (row, col) to (rowspan, colspan); covered cells are left out."""
    spans = spans or {}
    covered = {
        (r + dr, c + dc)
        for (r, c), (rs, cs) in spans.items()
        for dr in range(rs)
        for dc in range(cs)
        if (dr, dc) != (0, 0)
    }
    trs = []
    for r, row in enumerate(rows):
        tcs = []
        for c, text in enumerate(row):
            if (r, c) in covered:
                continue
            rs, cs = spans.get((r, c), (1, 1))
            tcs.append(
                f'<hp:tc name="" header="0" hasMargin="0" protect="0" editable="0" dirty="0" borderFillIDRef="1">'
                f"{_sublist([text])}"
                f'<hp:cellAddr colAddr="{c}" rowAddr="{r}"/><hp:cellSpan colSpan="{cs}" rowSpan="{rs}"/>'
                f'<hp:cellSz width="1000" height="1000"/></hp:tc>'
            )
        trs.append(f"<hp:tr>{''.join(tcs)}</hp:tr>")
    return f'<hp:tbl id="1" rowCnt="{len(rows)}" colCnt="{len(rows[0])}">{"".join(trs)}</hp:tbl>'


def footnote(text: str) -> str:
    return f'<hp:ctrl><hp:footNote number="1" instId="1">{_sublist([text])}</hp:footNote></hp:ctrl>'


def endnote(text: str) -> str:
    return f'<hp:ctrl><hp:endNote number="1" instId="2">{_sublist([text])}</hp:endNote></hp:ctrl>'


def header(text: str) -> str:
    return f'<hp:ctrl><hp:header id="1" applyPageType="BOTH">{_sublist([text])}</hp:header></hp:ctrl>'


def section(items: list[str | tuple[str, str]]) -> str:
    """Section XML from paragraphs: a str is a plain paragraph, (text, inner) one whose run also holds
    `inner` (a table, note or header) before its text."""
    body = "".join(_p(item) if isinstance(item, str) else _p(item[0], item[1]) for item in items)
    return f'{XML}<hs:sec xmlns:hp="{HP}" xmlns:hs="{HS}">{body}</hs:sec>'


def hwpx(sections: list[str], title: str = "", encrypted: bool = False, order: list[int] | None = None) -> bytes:
    """An HWPX package of `sections` (section XML); `order` is the spine's reading order."""
    order = order if order is not None else list(range(len(sections)))
    items = "".join(
        f'<opf:item id="section{i}" href="Contents/section{i}.xml" media-type="application/xml"/>'
        for i in range(len(sections))
    )
    spine = "".join(f'<opf:itemref idref="section{i}" linear="yes"/>' for i in order)
    hpf = (
        f'{XML}<opf:package xmlns:opf="{OPF}" version="">'
        f"<opf:metadata><opf:title>{escape(title)}</opf:title><opf:language>ko</opf:language></opf:metadata>"
        f'<opf:manifest><opf:item id="header" href="Contents/header.xml" media-type="application/xml"/>{items}'
        f"</opf:manifest><opf:spine>{spine}</opf:spine></opf:package>"
    )
    manifest = f'{XML}<odf:manifest xmlns:odf="{MANIFEST}">'
    if encrypted:
        manifest += '<odf:file-entry odf:full-path="Contents/section0.xml"><odf:encryption-data/></odf:file-entry>'
    manifest += "</odf:manifest>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/hwp+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr(
            "version.xml",
            f'{XML}<hv:HCFVersion xmlns:hv="http://www.hancom.co.kr/hwpml/2011/version" major="5" minor="1"/>',
        )
        z.writestr(
            "META-INF/container.xml",
            f'{XML}<ocf:container xmlns:ocf="{CONTAINER}"><ocf:rootfiles>'
            '<ocf:rootfile full-path="Contents/content.hpf" media-type="application/hwpml-package+xml"/>'
            "</ocf:rootfiles></ocf:container>",
        )
        z.writestr("META-INF/manifest.xml", manifest)
        z.writestr("Contents/content.hpf", hpf)
        z.writestr(
            "Contents/header.xml",
            f'{XML}<hh:head xmlns:hh="http://www.hancom.co.kr/hwpml/2011/head" secCnt="{len(sections)}"/>',
        )
        for i, xml in enumerate(sections):
            z.writestr(f"Contents/section{i}.xml", xml)
    return out.getvalue()


def zip_bomb(name: str, unpacked_mb: int) -> bytes:
    """A small zip whose one member unpacks to `unpacked_mb` MB of one repeated byte."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z, z.open(name, "w", force_zip64=True) as member:
        block = b"<" * 2**20
        for _ in range(unpacked_mb):
            member.write(block)
    return out.getvalue()

"""Decode text files whose encoding nobody wrote down.

Korean files are still often saved in cp949/euc-kr (cp949 is a superset of euc-kr), which a
UTF-8-only reader would mangle. Order: BOM, strict UTF-8, strict cp949, then charset-normalizer's
guess for everything else (latin-1, shift_jis, …).
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from charset_normalizer import from_bytes

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UndecodableError(ValueError):
    """Bytes that are binary or in no encoding we can identify."""


def looks_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KiB mean binary, unless a UTF-16/32 BOM explains them."""
    head = data[:8192]
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return False
    return b"\x00" in head


def decode_text(data: bytes) -> tuple[str, str]:
    """Return (text, encoding name). Raises UndecodableError for binary or unknown bytes."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data.decode(name), name
    if looks_binary(data):
        raise UndecodableError("binary content (NUL bytes)")
    for name in ("utf-8", "cp949"):
        try:
            return data.decode(name), name
        except UnicodeDecodeError:
            pass
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise UndecodableError("unknown text encoding")
    # Short Western text fits several code pages equally well; cp1252 is by far the most common.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    best = next((m for m in tied if m.encoding == "cp1252"), best)
    return str(best), best.encoding


def decode_path(path: Path) -> str:
    """A path as text, each component decoded on its own: UTF-8, else cp949, else escaped bytes.

    Linux hands Python a name that is not UTF-8 (a Korean zip unpacked from Windows carries cp949
    names) as lone surrogates, which SQLite, Kiwi and the terminal all reject. This name is what the
    index stores and shows; the file itself is still read through the original `path`.
    """
    parts = []
    for part in path.parts:
        raw = os.fsencode(part)
        for name in ("utf-8", "cp949"):
            try:
                parts.append(raw.decode(name))
                break
            except UnicodeDecodeError:
                pass
        else:
            parts.append(raw.decode("utf-8", "backslashreplace"))
    return str(Path(*parts))

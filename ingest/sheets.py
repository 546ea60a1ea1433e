"""Spreadsheets (xlsx) and delimited text (csv, tsv) as rows that keep their column names.

Every sheet becomes one page (its 1-based position is the page number, its name the page's first
line); its rows are written by ingest.tables, so each row line repeats the header row's names
(`품목: 볼펜 | 수량: 120 | 단가: 500원`) and a chunk cut anywhere still says what each number is.

Values are shown as the sheet displays them where the cell's number format says how: thousands
separators, decimals, percentages, quoted suffixes such as `"원"`, currency signs and dates
(`yyyy-mm-dd`, `yyyy"년" m"월" d"일"`, …). Formulas give the value Excel saved with the file (a
workbook never opened in Excel after its formulas were written has none: those cells read empty).
Sheets are streamed (openpyxl's read-only mode) with the size each sheet declares ignored (a
4 KB file may declare A1:XFD1048576, 17 billion cells, which openpyxl would otherwise pad every row
to): only the cells stored are read, and a workbook past MAX_CELLS cells raises SheetTooLarge rather
than filling memory. Merged cells are not reported in that mode, so a merged value appears once, in
its top-left cell.

csv and tsv are decoded like text files (ingest.encoding: UTF-8, CP949/EUC-KR, …); a .csv's
delimiter is sniffed among `, ; | tab`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

from ingest.tables import MAX_CELLS, table_lines


class SheetTooLarge(ValueError):
    pass


_QUOTED = re.compile(r'"([^"]*)"')
_SECTION = re.compile(r"\[[^\]]*\]")  # [Red], [$-412], [>=100] … : colour, locale and condition tags


def _date_text(value: dt.date | dt.datetime | dt.time, fmt: str) -> str:
    """A date or time in the spirit of its format: Korean year/month/day words kept, else ISO."""
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S" if "s" in fmt.lower() else "%H:%M")
    has_time = isinstance(value, dt.datetime) and re.search(r"h", fmt, re.IGNORECASE)
    if "년" in fmt or "월" in fmt or "일" in fmt:
        text = f"{value.year}년 {value.month}월 {value.day}일"
    else:
        text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if has_time:
        text += f" {value.hour:02d}:{value.minute:02d}"
    return text


def _number_text(value: float, fmt: str) -> str:
    """`value` through the first section of an Excel number format (the common cases)."""
    section = _SECTION.sub("", fmt.split(";")[0])
    literals = _QUOTED.findall(section)
    core = _QUOTED.sub("", section)
    if not re.search(r"[0#?]", core):  # General, @, or text only
        return _general(value)
    percent = "%" in core
    if percent:
        value *= 100
    decimals = len(m.group(1)) if (m := re.search(r"\.([0#?]+)", core)) else 0
    text = f"{value:,.{decimals}f}" if "," in core else f"{value:.{decimals}f}"
    prefix = "".join(ch for ch in core.split("0")[0].split("#")[0] if ch in "$€£¥₩")
    suffix = "".join(literals) + ("%" if percent else "")
    return f"{prefix}{text}{suffix}"


def _general(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def display(value: object, fmt: str = "General") -> str:
    """A cell's value as the sheet shows it (see the module doc)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return _date_text(value, fmt)
    if isinstance(value, int | float):
        return _number_text(value, fmt or "General")
    return str(value).strip()


def sheet_text(name: str, rows: list[list[str]]) -> str:
    """One sheet's page: its name, then its rows (header names on every row when it has a header)."""
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return ""
    return "\n\n".join([name, *(line for line in table_lines(rows) if line)])


def xlsx_sheets(data: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(workbook title, [(sheet name, page text)]) of an xlsx file, every sheet in order."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets, cells = [], 0
        for sheet in book.worksheets:
            sheet.reset_dimensions()  # the declared size may be a lie: read the rows stored
            rows = []
            for row in sheet.iter_rows():
                cells += len(row)
                if cells > MAX_CELLS:
                    raise SheetTooLarge(f"sheet {sheet.title!r} takes the workbook past {MAX_CELLS:,} cells")
                if row:  # a run of missing rows comes as empty tuples
                    rows.append([display(c.value, getattr(c, "number_format", "")) for c in row])
            sheets.append((sheet.title, sheet_text(sheet.title, rows)))
        title = book.properties.title or ""
    finally:
        book.close()
    return title, sheets


def delimited_rows(text: str, suffix: str) -> list[list[str]]:
    """Rows of csv (delimiter sniffed) or tsv text."""
    delimiter = "\t"
    if suffix != ".tsv":
        try:
            delimiter = csv.Sniffer().sniff(text[:20_000], delimiters=",;|\t").delimiter
        except csv.Error:
            delimiter = ","
    return [row for row in csv.reader(io.StringIO(text), delimiter=delimiter)]

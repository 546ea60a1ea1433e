"""Tables as text a chunk can carry alone: every row keeps the names of its columns.

A chunk is cut wherever the chunker finds room, so a row far below its header must still say what
its numbers are. Each row becomes one line (and one paragraph):

- two columns: `key: value` (Korean office forms are label/value pairs; a real header row reads
  the same way: `항목: 금액`);
- three or more, with a header row (first row all filled, short and distinct, none of it a
  number): `name: value | name: value`, the header row itself not repeated as data;
- otherwise the cells joined with ` | `, a cell merged across columns said once.

Empty cells are left out of a row's line; a row with nothing in it is dropped. Merged cells arrive
already repeated into every row and column they span (the readers fill the grid), so a row split
across a rowspan still names its group.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"^[\s\d.,%+\-−()원$€₩]+$")


def clean_cell(text: str) -> str:
    """One cell's text on one line."""
    return " ".join(text.split())


HEADER_CELL_CHARS = 40


def has_header(rows: list[list[str]]) -> bool:
    """Whether the first row reads as column names: every cell filled, short, none a bare number,
    no two alike (a sentence merged across the first row of a layout table, as press releases'
    보도일시 boxes have, is not a header)."""
    if len(rows) < 2 or len(rows[0]) < 2:
        return False
    first = rows[0]
    return len(set(first)) == len(first) and all(
        cell and len(cell) <= HEADER_CELL_CHARS and not _NUMBER.match(cell) for cell in first
    )


def _once(row: list[str]) -> list[str]:
    """A row's filled cells, a run of equal neighbours (one merged cell) said once."""
    return [cell for i, cell in enumerate(row) if cell and (i == 0 or cell != row[i - 1])]


def table_lines(rows: list[list[str]]) -> list[str]:
    """The lines of one table (see the module doc), its rows as they come."""
    rows = [_trimmed([clean_cell(c) for c in row]) for row in rows]
    rows = [row for row in rows if row]
    if not rows:
        return []
    width = max(len(row) for row in rows)
    if width == 2:
        return [f"{a}: {b}" if a and b and a != b else a or b for a, b in (row + [""] * (2 - len(row)) for row in rows)]
    if has_header(rows):
        header = rows[0]
        return [_named(header, row) for row in rows[1:]]
    return [" | ".join(_once(row)) for row in rows]


def _trimmed(row: list[str]) -> list[str]:
    """The row without its trailing empty cells (a sheet pads rows to its widest one)."""
    while row and not row[-1]:
        row = row[:-1]
    return row


def _named(header: list[str], row: list[str]) -> str:
    """`name: value | …`; cells past the header's last column go in unnamed; a cell merged across
    the whole row (a note, a group heading) said once, without names."""
    if len(row) > 1 and len(set(row)) == 1:
        return row[0]
    named = [f"{name}: {value}" for name, value in zip(header, row) if value]
    return " | ".join(named + [cell for cell in row[len(header) :] if cell])


MAX_CELLS = 1_000_000


def grid(cells: list[tuple[int, int, int, int, str]]) -> list[list[str]]:
    """Rows of a table given as (row, col, rowspan, colspan, text) cells, a merged cell's text
    repeated over every position it spans. Raises ValueError past MAX_CELLS positions (a damaged or
    hostile address would otherwise allocate without bound)."""
    if not cells:
        return []
    rows = max(r + max(rs, 1) for r, _, rs, _, _ in cells)
    cols = max(c + max(cs, 1) for _, c, _, cs, _ in cells)
    if rows * cols > MAX_CELLS:
        raise ValueError(f"table of {rows} x {cols} cells (over {MAX_CELLS:,})")
    out = [[""] * cols for _ in range(rows)]
    for row, col, rowspan, colspan, text in cells:
        for r in range(row, row + max(rowspan, 1)):
            for c in range(col, col + max(colspan, 1)):
                out[r][c] = text
    return out


def render_table(rows: list[list[str]]) -> str:
    """One table as text: each row its own paragraph, so the chunker never cuts inside a row."""
    return "\n\n".join(line for line in table_lines(rows) if line)

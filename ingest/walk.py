"""Find the files to ingest under the paths a user names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rag.errors import RagError


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def walk(paths: list[Path]) -> Iterator[Path]:
    """Files named directly, and every non-hidden file under named folders, in sorted order."""
    for path in paths:
        if not path.exists():
            raise RagError(f"{path}: no such file or folder")
        root = path.resolve()
        if root.is_file():
            yield root
            continue
        for child in sorted(root.rglob("*")):
            if child.is_file() and not _hidden(child, root):
                yield child

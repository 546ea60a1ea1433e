"""The documents behind `rag serve`: list, add (an upload, or a server-side path under allowed
roots) and remove, through the same incremental, locked, crash-safe ingest as `rag ingest`.

Uploads are kept in `INDEX/uploads/` (the index owns them: removing one deletes the file). A
server-side path must resolve, symlinks followed, inside a root the operator allowed at start-up
(`rag serve --allow-root DIR`); a client never names an arbitrary path. Removing such a document
drops it from the index and leaves the file alone (ingesting its folder again brings it back).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.loaders import LOADERS
from ingest.writer import IndexWriter, IngestReport
from rag.errors import RagError
from rag.settings import Settings
from rag.store import Store, open_store

UPLOADS = "uploads"
ACCEPT = ",".join(sorted(LOADERS))  # the page's upload field: every type ingest reads
_FIELDS = ("path", "title", "size", "chunks", "ingested_at", "complete")


class DocumentError(RagError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def document_id(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:16]


def _summary(report: IngestReport) -> dict:
    out = asdict(report)
    out["index_dir"] = report.index  # the key clients know; a folder, or a Milvus URI and collection
    del out["index"]
    out["seconds"] = round(report.seconds, 2)
    return out


@dataclass
class Documents:
    settings: Settings
    allowed_roots: tuple[Path, ...] = ()
    store: Store = field(init=False)

    def __post_init__(self) -> None:
        self.store = open_store(self.settings)

    @property
    def uploads(self) -> Path:
        return Path(self.settings.index_dir) / UPLOADS

    def list(self) -> list[dict]:
        return [
            {"id": document_id(f.path), "sha256": f.content_sha256, **{name: getattr(f, name) for name in _FIELDS}}
            for f in self.store.files()
        ]

    def add_upload(self, filename: str, data: bytes) -> dict:
        name = Path(filename or "").name.strip()
        if not name or name.startswith(".") or re.search(r"[\x00-\x1f]", name):
            raise DocumentError(400, f"filename {filename!r}: give a plain file name such as notes.md")
        if Path(name).suffix.lower() not in LOADERS:
            kinds = ", ".join(sorted(LOADERS))
            raise DocumentError(415, f"{name}: unsupported file type '{Path(name).suffix}'; use one of {kinds}")
        if len(data) > self.settings.max_file_mb * 2**20:
            limit = f"RAG_MAX_FILE_MB={self.settings.max_file_mb:g}"
            raise DocumentError(413, f"{name}: {len(data):,} bytes is over {limit}")
        self.uploads.mkdir(parents=True, exist_ok=True)
        target = self.uploads / name
        partial = self.uploads / f".{name}.partial"
        existed = target.exists()
        partial.write_bytes(data)
        partial.replace(target)  # a reader of uploads/ never sees half a file
        try:
            return self._ingest(target)
        except RagError:
            if not existed:  # not indexed: do not keep it either
                target.unlink(missing_ok=True)
            raise

    def add_path(self, path: str) -> dict:
        if not self.allowed_roots:
            raise DocumentError(403, "server-side paths are off: start rag serve with --allow-root DIR")
        resolved = Path(path).expanduser().resolve()
        if not any(resolved.is_relative_to(root) for root in self.allowed_roots):
            roots = ", ".join(str(r) for r in self.allowed_roots)
            raise DocumentError(403, f"{path}: not under an allowed root ({roots})")
        if not resolved.exists():
            raise DocumentError(404, f"{path}: no such file or folder")
        return self._ingest(resolved)

    def remove(self, doc_id: str) -> dict:
        match = next((d for d in self.list() if d["id"] == doc_id), None)
        if match is None:
            raise DocumentError(404, f"no document with id {doc_id!r}: GET /v1/documents lists them")
        report = IndexWriter(self.settings, store=self.store).remove([match["path"]])
        upload = Path(match["path"])
        if upload.parent == self.uploads.resolve():
            upload.unlink(missing_ok=True)
        return _summary(report)

    def _ingest(self, path: Path) -> dict:
        report = IndexWriter(self.settings, store=self.store).ingest([path])
        if report.skipped and not report.ingested and not report.unchanged:
            raise DocumentError(422, f"{report.skipped[0][0]}: {report.skipped[0][1]}")
        return _summary(report)

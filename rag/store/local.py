"""The embedded default store: FAISS + SQLite + bm25s files in one index folder.

Layout of an index folder:

    CURRENT           name of the live generation, replaced atomically (os.replace)
    gen-000007/       one complete, immutable generation:
        manifest.json     embedder id, dimension, chunker settings, versions, counts
        chunks.sqlite     files (path, sha256, …) and chunks (text, source, page, offsets)
        vectors.faiss     IndexIDMap2(IndexFlatIP); ids are chunk ids; vectors are normalised
        bm25/, bm25_ids.npy   bm25s index over the chunks' Kiwi/stemmed tokens, and its row -> chunk id map
    .lock             held by a running ingest (flock)

A reader follows CURRENT, so an ingest that crashes or is interrupted before switching CURRENT
leaves the previous generation in use. Nothing here unpickles: JSON, SQLite and FAISS's own format.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.store import (
    FORMAT_VERSION,
    Changes,
    Committed,
    IndexBusy,
    IndexReader,
    NewDocument,
    Store,
    StoredChunk,
    StoredFile,
)

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
CHUNKS_DB = "chunks.sqlite"
VECTORS = "vectors.faiss"
LOCK = ".lock"
BM25_DIR = "bm25"
BM25_IDS = "bm25_ids.npy"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    title TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL REFERENCES files(path),
    title TEXT NOT NULL,
    page INTEGER,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    tokens TEXT NOT NULL DEFAULT '',
    ocr INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks(path);
"""
# columns added after an index format shipped: an older generation is read as if they held their
# default, and its next ingest adds them (the copy of its database is migrated, the live one untouched)
ADDED_COLUMNS = {"ocr": "INTEGER NOT NULL DEFAULT 0"}


def _chunk_columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(chunks)")}


def _migrate(db: sqlite3.Connection) -> None:
    present = _chunk_columns(db)
    for name, declaration in ADDED_COLUMNS.items():
        if present and name not in present:
            db.execute(f"ALTER TABLE chunks ADD COLUMN {name} {declaration}")


def live_generation(index_dir: Path) -> Path | None:
    """Folder of the generation CURRENT names, or None for a folder with no committed index."""
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        return None
    generation = index_dir / pointer.read_text(encoding="utf-8").strip()
    return generation if (generation / MANIFEST).is_file() else None


def read_manifest(generation: Path) -> dict:
    return json.loads((generation / MANIFEST).read_text(encoding="utf-8"))


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive lock on the index folder; a second ingest fails at once with a clear message."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise IndexBusy(f"another ingest (pid {holder}) is writing to {index_dir}: wait for it to finish") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _load_bm25(generation: Path):
    """The bm25s index and its row -> chunk id map; None for an index with no chunks."""
    if not (generation / BM25_IDS).is_file():
        return None
    import bm25s

    index = bm25s.BM25.load(str(generation / BM25_DIR), allow_pickle=False, show_progress=False)
    return index, np.load(generation / BM25_IDS, allow_pickle=False)


def _write_bm25(db: sqlite3.Connection, folder: Path) -> None:
    """Rebuild the BM25 index from the stored tokens of every chunk (only new chunks were tokenized).

    bm25s saves numpy arrays and JSON, and we load them with allow_pickle=False.
    """
    import bm25s

    rows = db.execute("SELECT id, tokens FROM chunks ORDER BY id").fetchall()
    if not rows:
        return
    index = bm25s.BM25()
    index.index([tokens.split() for _, tokens in rows], show_progress=False)
    index.save(str(folder / BM25_DIR), show_progress=False)
    np.save(folder / BM25_IDS, np.array([chunk_id for chunk_id, _ in rows], dtype=np.int64), allow_pickle=False)


class LocalReader(IndexReader):
    """One generation's files: FAISS for dense search, bm25s for lexical, SQLite for the chunks."""

    def __init__(self, index_dir: Path) -> None:
        import faiss

        generation = live_generation(index_dir)
        self.location = str(index_dir)
        if generation is None:
            raise RagError(f"no index at {index_dir}: run `rag ingest FOLDER --index {index_dir}` first")
        self.manifest = read_manifest(generation)
        self._check_format()
        self.generation = generation
        self.vectors = faiss.read_index(str(generation / VECTORS))
        self._bm25 = None
        self.db = sqlite3.connect(f"file:{generation / CHUNKS_DB}?mode=ro", uri=True, check_same_thread=False)
        self._ocr = "ocr" if "ocr" in _chunk_columns(self.db) else "0"

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if len(self) == 0 or k <= 0:
            return []
        scores, ids = self.vectors.search(query_vector.reshape(1, -1).astype(np.float32), min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def lexical_search(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        if self._bm25 is None:
            self._bm25 = _load_bm25(self.generation)
        if self._bm25 is None or not tokens or k <= 0:
            return []
        index, ids = self._bm25
        scores = index.get_scores(tokens)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        columns = f"id, path, title, page, start, end, text, {self._ocr}"
        rows = self.db.execute(f"SELECT {columns} FROM chunks WHERE id IN ({marks})", ids)
        return {row[0]: StoredChunk(*row[:7], ocr=bool(row[7])) for row in rows}

    def close(self) -> None:
        self.db.close()


class LocalStore(Store):
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.location = str(index_dir)

    def generation(self) -> str | None:
        live = live_generation(self.index_dir)
        return live.name if live else None

    def manifest(self) -> dict | None:
        live = live_generation(self.index_dir)
        return read_manifest(live) if live else None

    def reader(self) -> LocalReader:
        return LocalReader(self.index_dir)

    def files(self) -> list[StoredFile]:
        live = live_generation(self.index_dir)
        if live is None:
            return []
        with sqlite3.connect(f"file:{live / CHUNKS_DB}?mode=ro", uri=True) as db:
            ids: dict[str, list[int]] = {}
            for path, chunk_id in db.execute("SELECT path, id FROM chunks ORDER BY id"):
                ids.setdefault(path, []).append(chunk_id)
            rows = db.execute("SELECT path, sha256, size, title, ingested_at FROM files ORDER BY path").fetchall()
        return [StoredFile(*row, chunk_ids=tuple(ids.get(row[0], ()))) for row in rows]

    def lock(self):
        return writer_lock(self.index_dir)

    def clean(self) -> None:
        """Leftovers of an ingest that crashed; safe to delete because we hold the lock."""
        live = live_generation(self.index_dir)
        for child in self.index_dir.iterdir():
            stale_gen = child.name.startswith("gen-") and (live is None or child.name != live.name)
            if child.name.startswith(".tmp-") or stale_gen:
                shutil.rmtree(child, ignore_errors=True)
            elif child.name.startswith(f".{CURRENT}."):
                child.unlink(missing_ok=True)

    def commit(self, changes: Changes) -> Committed:
        import faiss

        previous = live_generation(self.index_dir)
        tmp = self.index_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        done = Committed()
        try:
            if previous:
                shutil.copy2(previous / CHUNKS_DB, tmp / CHUNKS_DB)
                index = faiss.read_index(str(previous / VECTORS))
            else:
                index = faiss.IndexIDMap2(faiss.IndexFlatIP(changes.vectors.shape[1]))
            db = sqlite3.connect(tmp / CHUNKS_DB)
            try:
                with db:
                    _migrate(db)
                    db.executescript(SCHEMA)
                    old_ids = self._delete_files(db, changes.drop)
                    new_ids = self._insert_files(db, changes.documents, changes.tokens)
                    done.chunks_total = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
                    done.files_total = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
                _write_bm25(db, tmp)
            finally:
                db.close()
            if old_ids:
                index.remove_ids(np.array(old_ids, dtype=np.int64))
            if new_ids:
                index.add_with_ids(changes.vectors, np.array(new_ids, dtype=np.int64))
            faiss.write_index(index, str(tmp / VECTORS))
            done.chunks_added, done.chunks_removed = len(new_ids), len(old_ids)
            manifest = changes.manifest | {
                "format_version": FORMAT_VERSION,
                "store": "local",
                "dimension": index.d,
                "metric": "cosine (inner product of normalised vectors)",
                "chunks": done.chunks_total,
                "files": done.files_total,
                "versions": changes.manifest.get("versions", {}) | {"faiss": faiss.__version__},
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
            for path in tmp.rglob("*"):
                if path.is_file():
                    _fsync(path)
            self._switch(tmp, previous)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return done

    @staticmethod
    def _delete_files(db: sqlite3.Connection, paths: set[str]) -> list[int]:
        ids: list[int] = []
        for path in sorted(paths):
            ids += [row[0] for row in db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]
            db.execute("DELETE FROM chunks WHERE path = ?", (path,))
            db.execute("DELETE FROM files WHERE path = ?", (path,))
        return ids

    @staticmethod
    def _insert_files(db: sqlite3.Connection, documents: list[NewDocument], tokens: list[str]) -> list[int]:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        ids: list[int] = []
        token_rows = iter(tokens)
        for f in documents:
            db.execute(
                "INSERT INTO files (path, sha256, size, title, chunks, ingested_at) VALUES (?, ?, ?, ?, ?, ?)",
                (f.path, f.sha256, f.size, f.title, len(f.chunks), now),
            )
            for page, start, end, text, ocr in f.chunks:
                cursor = db.execute(
                    "INSERT INTO chunks (path, title, page, start, end, text, tokens, ocr) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (f.path, f.title, page, start, end, text, next(token_rows), int(ocr)),
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def _switch(self, tmp: Path, previous: Path | None) -> None:
        """Make `tmp` the live generation with one atomic rename, then drop the old one."""
        number = int(previous.name.split("-")[1]) + 1 if previous else 1
        generation = self.index_dir / f"gen-{number:06d}"
        tmp.rename(generation)
        pointer = self.index_dir / f".{CURRENT}.{uuid.uuid4().hex}"
        pointer.write_text(generation.name, encoding="utf-8")
        _fsync(pointer)
        os.replace(pointer, self.index_dir / CURRENT)
        dir_fd = os.open(self.index_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        if previous:
            shutil.rmtree(previous, ignore_errors=True)

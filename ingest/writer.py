"""Incremental, crash-safe writes of the index (see `rag.store` for the layout).

An ingest reads every file under the given roots, hashes it, and only loads, chunks and embeds
files whose content (or the chunker settings) changed. Files that vanished from under a root, or
that can no longer be read, are pruned. All changes go into a new generation folder that becomes
live with one atomic rename of CURRENT; until then readers see the previous generation untouched,
so a crash or Ctrl-C at any point loses nothing. One writer at a time, enforced by flock.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ingest.chunking import chunk_text
from ingest.encoding import decode_path
from ingest.loaders import Page, SkipFile, load_file
from ingest.walk import walk
from rag import __version__
from rag.errors import RagError
from rag.lexical import tokenize_many
from rag.models.embedder import legacy_note, load_embedder, prefixes
from rag.settings import Settings
from rag.store import (
    BM25_DIR,
    BM25_IDS,
    CHUNKS_DB,
    CURRENT,
    FORMAT_VERSION,
    LOCK,
    MANIFEST,
    SCHEMA,
    VECTORS,
    live_generation,
    manifest_backend,
    manifest_prefixes,
    read_manifest,
)

Progress = Callable[[str, int, int], None]
Reader = Callable[[str | None], "_NewFile | None"]  # known sha256 -> new content, or None if unchanged
CHUNKER_VERSION = "kiwi-sentences-1"


@dataclass
class IngestReport:
    index_dir: Path
    files_seen: int = 0
    ingested: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Record:
    """A document given as text rather than as a file (evaluation corpora); `id` is its source key."""

    id: str
    text: str
    title: str = ""


@dataclass
class _NewFile:
    path: str
    sha256: str
    size: int
    title: str
    chunks: list[tuple[int | None, int, int, str]]  # page, start, end, text


class IndexBusy(RagError):
    """Another ingest holds the index's writer lock."""


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


def chunker_settings(settings: Settings) -> dict:
    return {"size": settings.chunk_size, "overlap": settings.chunk_overlap, "splitter": CHUNKER_VERSION}


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _embedded_texts(new_files: list[_NewFile]) -> list[str]:
    """What represents a chunk for both retrievers: its document's title, then its text."""
    return [f"{f.title}\n{text}" for f in new_files for _, _, _, text in f.chunks]


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


class IndexWriter:
    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self.progress = progress or (lambda stage, done, total: None)

    def ingest(self, paths: list[Path]) -> IngestReport:
        """Files and folders: only what is under `paths` is compared, and pruned when it vanished."""
        files = list(walk(paths))  # fails on a missing path before anything is touched
        roots = [decode_path(p.resolve()) for p in paths]
        sources = [(decode_path(path), functools.partial(self._read, path)) for path in files]
        return self._run(sources, lambda key: _under(key, roots))

    def ingest_records(self, records: list[Record]) -> IngestReport:
        """In-memory documents (evaluation corpora): the index ends up holding exactly `records`."""
        sources = [(record.id, functools.partial(self._read_record, record)) for record in records]
        return self._run(sources, lambda key: True)

    def remove(self, keys: list[str]) -> IngestReport:
        """Drop these sources (as the index names them) in one new generation; files on disk stay."""
        wanted = set(keys)
        return self._run([], lambda key: key in wanted)

    def _run(self, sources: list[tuple[str, Reader]], in_scope: Callable[[str], bool]) -> IngestReport:
        started = time.perf_counter()
        with writer_lock(self.index_dir):
            self._remove_stale_temporaries()
            report = self._ingest_locked(sources, in_scope)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_locked(self, sources: list[tuple[str, Reader]], in_scope: Callable[[str], bool]) -> IngestReport:
        report = IngestReport(self.index_dir)
        previous = live_generation(self.index_dir)
        manifest = read_manifest(previous) if previous else None
        if manifest and "embedder" not in self.settings.model_fields_set:
            # an index keeps its embedder unless one is asked for (then a mismatch is refused below)
            self.settings = self.settings.model_copy(update={"embedder": manifest["embedder"]})
            if note := legacy_note(manifest["embedder"]):
                report.notes.append(note)
        if manifest and manifest["embedder"] != self.settings.embedder:
            raise RagError(
                f"index {self.index_dir} was built with embedder '{manifest['embedder']}', not "
                f"'{self.settings.embedder}': set RAG_EMBEDDER to the former or use a new --index folder"
            )
        if manifest and manifest_prefixes(manifest) != prefixes(self.settings.embedder):
            raise RagError(
                f"index {self.index_dir} was embedded without the prefixes this rag gives "
                f"'{self.settings.embedder}' ({prefixes(self.settings.embedder)[1]!r}): use a new --index folder"
            )
        rechunk = manifest is not None and manifest["chunker"] != chunker_settings(self.settings)
        known = self._known_files(previous)

        seen: set[str] = set()
        new_files: list[_NewFile] = []
        for n, (key, read) in enumerate(sources, 1):
            self.progress("reading", n, len(sources))
            report.files_seen += 1
            try:
                new = read(None if rechunk else known.get(key))
            except SkipFile as exc:
                report.skipped.append((key, str(exc)))
                continue
            seen.add(key)
            if new is None:
                report.unchanged += 1
            else:
                new_files.append(new)
                report.ingested.append(key)

        replaced = {f.path for f in new_files if f.path in known}
        vanished = {key for key in known if in_scope(key) and key not in seen}
        report.removed = sorted(vanished)
        if new_files or vanished or previous is None:
            vectors = self._embed(new_files, self._backend(manifest))
            tokens = self._tokenize(new_files)
            self._commit(previous, manifest, new_files, replaced | vanished, vectors, tokens, report)
        else:
            report.chunks_total = manifest["chunks"]
        return report

    def _known_files(self, generation: Path | None) -> dict[str, str]:
        if generation is None:
            return {}
        with sqlite3.connect(f"file:{generation / CHUNKS_DB}?mode=ro", uri=True) as db:
            return dict(db.execute("SELECT path, sha256 FROM files"))

    def _chunks(self, pages: list[Page]) -> list[tuple[int | None, int, int, str]]:
        size, overlap = self.settings.chunk_size, self.settings.chunk_overlap
        chunks = [(page.number, c.start, c.end, c.text) for page in pages for c in chunk_text(page.text, size, overlap)]
        if not chunks:
            raise SkipFile("no text content")
        return chunks

    def _read_record(self, record: Record, known_sha: str | None) -> _NewFile | None:
        data = f"{record.title}\0{record.text}".encode()
        sha = hashlib.sha256(data).hexdigest()
        if sha == known_sha:
            return None
        return _NewFile(record.id, sha, len(data), record.title, self._chunks([Page(record.text)]))

    def _read(self, path: Path, known_sha: str | None) -> _NewFile | None:
        """Load and chunk `path`; None when its content is already indexed as is."""
        try:
            size = path.stat().st_size
            limit = self.settings.max_file_mb * 1024 * 1024
            if size > limit:
                raise SkipFile(
                    f"too large ({size / 2**20:.1f} MB > {self.settings.max_file_mb:g} MB; raise RAG_MAX_FILE_MB)"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise SkipFile(f"unreadable ({exc.strerror or exc})") from exc
        sha = hashlib.sha256(data).hexdigest()
        if sha == known_sha:
            return None
        name = decode_path(path)
        loaded = load_file(Path(name), data)
        return _NewFile(name, sha, len(data), loaded.title, self._chunks(loaded.pages))

    def _backend(self, manifest: dict | None) -> str:
        """An index keeps the backend it was first embedded with; a new one takes the setting."""
        return manifest_backend(manifest) if manifest else self.settings.embed_backend

    def _embed(self, new_files: list[_NewFile], backend: str) -> np.ndarray:
        """Embed every new chunk (title + text), shortest first so batches carry little padding."""
        texts = _embedded_texts(new_files)
        embedder = load_embedder(self.settings.embedder, self.settings.embed_batch_size, backend)
        out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batch = self.settings.embed_batch_size
        self.progress("embedding", 0, len(texts))
        for begin in range(0, len(order), batch):
            rows = order[begin : begin + batch]
            out[rows] = embedder.embed_passages([texts[i] for i in rows])
            self.progress("embedding", min(begin + batch, len(texts)), len(texts))
        return out

    def _tokenize(self, new_files: list[_NewFile]) -> list[str]:
        """BM25 tokens of every new chunk (title + text, as embedded), stored space-joined."""
        texts = _embedded_texts(new_files)
        out: list[str] = []
        for begin in range(0, len(texts), 256):
            out += [" ".join(tokens) for tokens in tokenize_many(texts[begin : begin + 256])]
            self.progress("tokenizing", len(out), len(texts))
        return out

    def _commit(
        self,
        previous: Path | None,
        manifest: dict | None,
        new_files: list[_NewFile],
        drop_paths: set[str],
        vectors: np.ndarray,
        tokens: list[str],
        report: IngestReport,
    ) -> None:
        import faiss

        tmp = self.index_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            if previous:
                shutil.copy2(previous / CHUNKS_DB, tmp / CHUNKS_DB)
                index = faiss.read_index(str(previous / VECTORS))
            else:
                index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
            db = sqlite3.connect(tmp / CHUNKS_DB)
            try:
                with db:
                    db.executescript(SCHEMA)
                    old_ids = self._delete_files(db, drop_paths)
                    new_ids = self._insert_files(db, new_files, tokens)
                    report.chunks_total = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
                    files_total = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
                _write_bm25(db, tmp)
            finally:
                db.close()
            if old_ids:
                index.remove_ids(np.array(old_ids, dtype=np.int64))
            if new_ids:
                index.add_with_ids(vectors, np.array(new_ids, dtype=np.int64))
            faiss.write_index(index, str(tmp / VECTORS))
            report.chunks_added, report.chunks_removed = len(new_ids), len(old_ids)
            self._write_manifest(tmp, manifest, report.chunks_total, files_total, index.d)
            for path in tmp.rglob("*"):
                if path.is_file():
                    _fsync(path)
            self._switch(tmp, previous)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _delete_files(db: sqlite3.Connection, paths: set[str]) -> list[int]:
        ids: list[int] = []
        for path in sorted(paths):
            ids += [row[0] for row in db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]
            db.execute("DELETE FROM chunks WHERE path = ?", (path,))
            db.execute("DELETE FROM files WHERE path = ?", (path,))
        return ids

    @staticmethod
    def _insert_files(db: sqlite3.Connection, new_files: list[_NewFile], tokens: list[str]) -> list[int]:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        ids: list[int] = []
        token_rows = iter(tokens)
        for f in new_files:
            db.execute(
                "INSERT INTO files (path, sha256, size, title, chunks, ingested_at) VALUES (?, ?, ?, ?, ?, ?)",
                (f.path, f.sha256, f.size, f.title, len(f.chunks), now),
            )
            for page, start, end, text in f.chunks:
                cursor = db.execute(
                    "INSERT INTO chunks (path, title, page, start, end, text, tokens) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (f.path, f.title, page, start, end, text, next(token_rows)),
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def _write_manifest(self, folder: Path, previous: dict | None, chunks: int, files: int, dim: int) -> None:
        import faiss
        import sentence_transformers

        now = datetime.now(UTC).isoformat(timespec="seconds")
        manifest = {
            "format_version": FORMAT_VERSION,
            "embedder": self.settings.embedder,
            "dimension": dim,
            "metric": "cosine (inner product of normalised vectors)",
            "embedded_text": "passage prefix + title + newline + chunk text",
            "prefixes": dict(zip(("query", "passage"), prefixes(self.settings.embedder), strict=True)),
            "embed_backend": self._backend(previous),
            "chunker": chunker_settings(self.settings),
            "chunks": chunks,
            "files": files,
            "created_at": previous["created_at"] if previous else now,
            "updated_at": now,
            "versions": {
                "rag": __version__,
                "faiss": faiss.__version__,
                "sentence_transformers": sentence_transformers.__version__,
            },
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")

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

    def _remove_stale_temporaries(self) -> None:
        """Leftovers of an ingest that crashed; safe to delete because we hold the lock."""
        live = live_generation(self.index_dir)
        for child in self.index_dir.iterdir():
            stale_gen = child.name.startswith("gen-") and (live is None or child.name != live.name)
            if child.name.startswith(".tmp-") or stale_gen:
                shutil.rmtree(child, ignore_errors=True)
            elif child.name.startswith(f".{CURRENT}."):
                child.unlink(missing_ok=True)

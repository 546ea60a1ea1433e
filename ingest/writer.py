"""Incremental, crash-safe ingest into a store (`rag.store`: the local folder or Milvus).

An ingest reads every file under the given roots, hashes it, and only loads, chunks and embeds
files whose content (or the chunker settings) changed. Files that vanished from under a root, or
that can no longer be read, are pruned. The result, `Changes` (new documents with their vectors and
BM25 tokens, and the sources to drop), goes to `Store.commit`, which writes a new generation and
makes it live atomically: until then readers see the previous one, so a crash or Ctrl-C at any
point loses nothing. One writer at a time, enforced by the store's lock.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable
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
from rag.store import Changes, NewDocument, Store, manifest_backend, manifest_prefixes, open_store

Progress = Callable[[str, int, int], None]
Reader = Callable[[str | None], NewDocument | None]  # known sha256 -> new content, or None if unchanged
CHUNKER_VERSION = "kiwi-sentences-1"


@dataclass
class IngestReport:
    index: str  # the store's location
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


def chunker_settings(settings: Settings) -> dict:
    return {"size": settings.chunk_size, "overlap": settings.chunk_overlap, "splitter": CHUNKER_VERSION}


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _embedded_texts(new_files: list[NewDocument]) -> list[str]:
    """What represents a chunk for both retrievers: its document's title, then its text."""
    return [f"{f.title}\n{text}" for f in new_files for _, _, _, text in f.chunks]


class IndexWriter:
    """read → chunk → embed → tokenize the sources that changed, then one `Store.commit`."""

    def __init__(self, settings: Settings, progress: Progress | None = None, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
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
        with self.store.lock():
            self.store.clean()
            report = self._ingest_locked(sources, in_scope)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_locked(self, sources: list[tuple[str, Reader]], in_scope: Callable[[str], bool]) -> IngestReport:
        where = self.store.location
        report = IngestReport(where)
        manifest = self.store.manifest()
        if manifest and "embedder" not in self.settings.model_fields_set:
            # an index keeps its embedder unless one is asked for (then a mismatch is refused below)
            self.settings = self.settings.model_copy(update={"embedder": manifest["embedder"]})
            if note := legacy_note(manifest["embedder"]):
                report.notes.append(note)
        if manifest and manifest["embedder"] != self.settings.embedder:
            raise RagError(
                f"index {where} was built with embedder '{manifest['embedder']}', not "
                f"'{self.settings.embedder}': set RAG_EMBEDDER to the former or use a new --index folder"
            )
        if manifest and manifest_prefixes(manifest) != prefixes(self.settings.embedder):
            raise RagError(
                f"index {where} was embedded without the prefixes this rag gives "
                f"'{self.settings.embedder}' ({prefixes(self.settings.embedder)[1]!r}): use a new --index folder"
            )
        rechunk = manifest is not None and manifest["chunker"] != chunker_settings(self.settings)
        known = {f.path: f.sha256 for f in self.store.files()} if manifest else {}

        seen: set[str] = set()
        new_files: list[NewDocument] = []
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
        if new_files or vanished or manifest is None:
            changes = Changes(
                documents=new_files,
                vectors=self._embed(new_files, self._backend(manifest)),
                tokens=self._tokenize(new_files),
                drop=replaced | vanished,
                manifest=self._manifest(manifest),
            )
            done = self.store.commit(changes)
            report.chunks_added, report.chunks_removed = done.chunks_added, done.chunks_removed
            report.chunks_total = done.chunks_total
        else:
            report.chunks_total = manifest["chunks"]
        return report

    def _chunks(self, pages: list[Page]) -> list[tuple[int | None, int, int, str]]:
        size, overlap = self.settings.chunk_size, self.settings.chunk_overlap
        chunks = [(page.number, c.start, c.end, c.text) for page in pages for c in chunk_text(page.text, size, overlap)]
        if not chunks:
            raise SkipFile("no text content")
        return chunks

    def _read_record(self, record: Record, known_sha: str | None) -> NewDocument | None:
        data = f"{record.title}\0{record.text}".encode()
        sha = hashlib.sha256(data).hexdigest()
        if sha == known_sha:
            return None
        return NewDocument(record.id, sha, len(data), record.title, self._chunks([Page(record.text)]))

    def _read(self, path: Path, known_sha: str | None) -> NewDocument | None:
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
        return NewDocument(name, sha, len(data), loaded.title, self._chunks(loaded.pages))

    def _backend(self, manifest: dict | None) -> str:
        """An index keeps the backend it was first embedded with; a new one takes the setting."""
        return manifest_backend(manifest) if manifest else self.settings.embed_backend

    def _embed(self, new_files: list[NewDocument], backend: str) -> np.ndarray:
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

    def _tokenize(self, new_files: list[NewDocument]) -> list[str]:
        """BM25 tokens of every new chunk (title + text, as embedded), stored space-joined."""
        texts = _embedded_texts(new_files)
        out: list[str] = []
        for begin in range(0, len(texts), 256):
            out += [" ".join(tokens) for tokens in tokenize_many(texts[begin : begin + 256])]
            self.progress("tokenizing", len(out), len(texts))
        return out

    def _manifest(self, previous: dict | None) -> dict:
        """What this ingest decided, for the store's manifest (the store adds counts and its own facts)."""
        import sentence_transformers

        now = datetime.now(UTC).isoformat(timespec="seconds")
        return {
            "embedder": self.settings.embedder,
            "embedded_text": "passage prefix + title + newline + chunk text",
            "prefixes": dict(zip(("query", "passage"), prefixes(self.settings.embedder), strict=True)),
            "embed_backend": self._backend(previous),
            "chunker": chunker_settings(self.settings),
            "created_at": previous["created_at"] if previous else now,
            "updated_at": now,
            "versions": {"rag": __version__, "sentence_transformers": sentence_transformers.__version__},
        }

"""Incremental, crash-safe ingest into a store (`rag.store`: the local folder or Milvus).

An ingest reads every file under the given roots, hashes it, and only loads, chunks and embeds
files whose content (or the chunker settings) changed. Files that vanished from under a root, or
that can no longer be read, are pruned. The result, `Changes` (new documents with their vectors and
BM25 tokens, and the sources to drop), goes to `Store.commit`, which writes a new generation and
makes it live atomically: until then readers see the previous one, so a crash or Ctrl-C at any
point loses nothing. One writer at a time, enforced by the store's lock.

Where the reading, embedding and tokenizing run is a `Compute`: this process (`LocalCompute`, the
default) or a Ray cluster (`ingest.ray_pipeline.RayCompute`, `rag ingest --ray`). Both run the same
per-source function (`SourceReader`) on the same jobs and embed the same batches
(`embedding_batches`); the writer alone decides what changed and commits, so incremental ingest,
pruning and crash safety do not depend on where the work ran.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from ingest.chunking import chunk_text
from ingest.encoding import decode_path
from ingest.loaders import Page, SkipFile, load_file
from ingest.ocr import OcrUnavailable, tesseract
from ingest.walk import walk
from rag import __version__
from rag.errors import RagError
from rag.models.embedder import legacy_note, load_embedder, prefixes
from rag.retrieve.lexical import tokenize_many
from rag.settings import Settings
from rag.store import (
    UNREAD_MARK,
    Changes,
    NewChunk,
    NewDocument,
    Store,
    manifest_backend,
    manifest_prefixes,
    open_store,
)

Progress = Callable[[str, int, int], None]
CHUNKER_VERSION = "kiwi-sentences-1"
# bump when a loader reads files differently (2: a plain text file's title is its first line;
# 3: docx tables as rows that keep their column names, HWP/HWPX/xlsx/csv/tsv/pptx read;
# 4: HWP/HWPX auto numbers, "표 1"; 5: HTML tables as rows that keep their column names): an index
# made before is re-read whole on its next ingest
LOADER_VERSION = "5"


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


Source = Path | Record
Outcome = NewDocument | SkipFile | None  # read and chunked, why it was skipped, or unchanged


class ReadJob(NamedTuple):
    key: str  # the source's name in the index
    source: Source
    known_sha: str | None  # the indexed content's sha256: equal means unchanged


class EmbedderSpec(NamedTuple):
    """What `load_embedder` takes: a worker loads the same embedder from it."""

    model_id: str
    batch_size: int
    backend: str


@dataclass(frozen=True)
class SourceReader:
    """Hash, load and chunk one source. A plain value Ray ships to its workers, so one runs exactly the
    code the local path runs."""

    chunk_size: int
    chunk_overlap: int
    max_file_mb: float

    @classmethod
    def of(cls, settings: Settings) -> SourceReader:
        return cls(settings.chunk_size, settings.chunk_overlap, settings.max_file_mb)

    def outcome(self, job: ReadJob) -> Outcome:
        try:
            if isinstance(job.source, Record):
                return self._read_record(job.source, job.known_sha)
            return self._read_file(job.source, job.known_sha)
        except SkipFile as exc:
            return exc

    def _chunks(self, pages: list[Page]) -> list[NewChunk]:
        size, overlap = self.chunk_size, self.chunk_overlap
        chunks = [
            NewChunk(page.number, c.start, c.end, c.text, page.ocr)
            for page in pages
            for c in chunk_text(page.text, size, overlap)
        ]
        if not chunks:
            raise SkipFile("no text content")
        return chunks

    def _read_record(self, record: Record, known_sha: str | None) -> NewDocument | None:
        data = f"{record.title}\0{record.text}".encode()
        sha = hashlib.sha256(data).hexdigest()
        if sha == known_sha:
            return None
        return NewDocument(record.id, sha, len(data), record.title, self._chunks([Page(record.text)]))

    def _read_file(self, path: Path, known_sha: str | None) -> NewDocument | None:
        """Load and chunk `path`; None when its content is already indexed as is."""
        try:
            size = path.stat().st_size
            limit = self.max_file_mb * 1024 * 1024
            if size > limit:
                raise SkipFile(f"too large ({size / 2**20:.1f} MB > {self.max_file_mb:g} MB; raise RAG_MAX_FILE_MB)")
            data = path.read_bytes()
        except OSError as exc:
            raise SkipFile(f"unreadable ({exc.strerror or exc})") from exc
        sha = hashlib.sha256(data).hexdigest()
        if sha == known_sha or (known_sha == sha + UNREAD_MARK and not _ocr_available()):
            return None
        name = decode_path(path)
        loaded = load_file(Path(name), data, int(limit))
        if loaded.unread:
            sha += UNREAD_MARK
        return NewDocument(name, sha, len(data), loaded.title, self._chunks(loaded.pages), loaded.unread)


def _ocr_available() -> bool:
    try:
        tesseract()
    except OcrUnavailable:
        return False
    return True


def embedding_batches(texts: list[str], size: int) -> list[list[int]]:
    """Row numbers of `texts` in batches of `size`, shortest first, so a batch carries little padding
    (the ONNX encoder then cuts each into calls of at most 512 padded tokens). Both compute paths
    embed exactly these batches: int8 activations are scaled per call, so a text's vector depends on
    its batch partners, and equal batches make equal vectors."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[begin : begin + size] for begin in range(0, len(order), size)]


def tokenize_joined(texts: list[str]) -> list[str]:
    """BM25 tokens of each text, space-joined as the stores keep them."""
    return [" ".join(tokens) for tokens in tokenize_many(texts)]


class Compute(Protocol):
    """Where an ingest's work runs. Each method returns its results in the order of its input."""

    def read(self, reader: SourceReader, jobs: list[ReadJob], progress: Progress) -> list[Outcome]: ...

    def embed(self, spec: EmbedderSpec, batches: list[list[str]], progress: Progress) -> list[np.ndarray]: ...

    def tokenize(self, texts: list[str], progress: Progress) -> list[str]: ...


class LocalCompute:
    """This process: sources one by one, embedding batches and Kiwi on this machine's cores."""

    def read(self, reader: SourceReader, jobs: list[ReadJob], progress: Progress) -> list[Outcome]:
        outcomes = []
        for n, job in enumerate(jobs, 1):
            progress("reading", n, len(jobs))
            outcomes.append(reader.outcome(job))
        return outcomes

    def embed(self, spec: EmbedderSpec, batches: list[list[str]], progress: Progress) -> list[np.ndarray]:
        embedder = load_embedder(*spec)
        total, done, out = sum(map(len, batches)), 0, []
        progress("embedding", 0, total)
        for batch in batches:
            out.append(embedder.embed_passages(batch))
            done += len(batch)
            progress("embedding", done, total)
        return out

    def tokenize(self, texts: list[str], progress: Progress) -> list[str]:
        out: list[str] = []
        for begin in range(0, len(texts), 256):  # Kiwi spreads each group over every core
            out += tokenize_joined(texts[begin : begin + 256])
            progress("tokenizing", len(out), len(texts))
        return out


def chunker_settings(settings: Settings) -> dict:
    return {
        "size": settings.chunk_size,
        "overlap": settings.chunk_overlap,
        "splitter": CHUNKER_VERSION,
        "loader": LOADER_VERSION,
    }


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _embedded_texts(new_files: list[NewDocument]) -> list[str]:
    """What represents a chunk for both retrievers: its document's title, then its text."""
    return [f"{f.title}\n{chunk.text}" for f in new_files for chunk in f.chunks]


class IndexWriter:
    """read → chunk → embed → tokenize the sources that changed, then one `Store.commit`."""

    def __init__(
        self,
        settings: Settings,
        progress: Progress | None = None,
        store: Store | None = None,
        compute: Compute | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
        self.progress = progress or (lambda stage, done, total: None)
        self.compute = compute or LocalCompute()

    def ingest(self, paths: list[Path]) -> IngestReport:
        """Files and folders: only what is under `paths` is compared, and pruned when it vanished."""
        files = list(walk(paths))  # fails on a missing path before anything is touched
        roots = [decode_path(p.resolve()) for p in paths]
        return self._run([(decode_path(path), path) for path in files], lambda key: _under(key, roots))

    def update(self, paths: list[Path]) -> IngestReport:
        """What a watcher saw change (ingest.watch): each path that exists is read again (a folder
        with everything under it; hashes still decide what is embedded), and whatever the index holds
        at or under a path that is gone, or no longer readable, is pruned. One commit for all."""
        files: list[Path] = []
        for path in paths:
            if path.exists():
                try:
                    files += walk([path])
                except RagError:  # gone between the check and the walk: pruned below
                    continue
        scope = [decode_path(p.absolute()) for p in paths]
        unique = dict.fromkeys(files)  # a new folder and the files in it are both reported
        return self._run([(decode_path(f), f) for f in unique], lambda key: _under(key, scope))

    def ingest_records(self, records: list[Record]) -> IngestReport:
        """In-memory documents (evaluation corpora): the index ends up holding exactly `records`."""
        return self._run([(record.id, record) for record in records], lambda key: True)

    def remove(self, keys: list[str]) -> IngestReport:
        """Drop these sources (as the index names them) in one new generation; files on disk stay."""
        wanted = set(keys)
        return self._run([], lambda key: key in wanted)

    def _run(self, sources: list[tuple[str, Source]], in_scope: Callable[[str], bool]) -> IngestReport:
        started = time.perf_counter()
        with self.store.lock():
            self.store.clean()
            report = self._ingest_locked(sources, in_scope)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_locked(self, sources: list[tuple[str, Source]], in_scope: Callable[[str], bool]) -> IngestReport:
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

        jobs = [ReadJob(key, source, None if rechunk else known.get(key)) for key, source in sources]
        outcomes = self.compute.read(SourceReader.of(self.settings), jobs, self.progress) if jobs else []
        report.files_seen = len(jobs)
        seen: set[str] = set()
        new_files: list[NewDocument] = []
        for job, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, SkipFile):
                report.skipped.append((job.key, str(outcome)))
                continue
            seen.add(job.key)
            if outcome is None:
                report.unchanged += 1
            else:
                new_files.append(outcome)
                report.ingested.append(job.key)
                if outcome.note:
                    report.notes.append(f"{job.key}: {outcome.note}")

        replaced = {f.path for f in new_files if f.path in known}
        vanished = {key for key in known if in_scope(key) and key not in seen}
        report.removed = sorted(vanished)
        if new_files or vanished or manifest is None:
            texts = _embedded_texts(new_files)
            changes = Changes(
                documents=new_files,
                vectors=self._embed(texts, manifest),
                tokens=self.compute.tokenize(texts, self.progress) if texts else [],
                drop=replaced | vanished,
                manifest=self._manifest(manifest),
            )
            done = self.store.commit(changes)
            report.chunks_added, report.chunks_removed = done.chunks_added, done.chunks_removed
            report.chunks_total = done.chunks_total
        else:
            report.chunks_total = manifest["chunks"]
        return report

    def _embed(self, texts: list[str], manifest: dict | None) -> np.ndarray:
        """One row per text, in order, from `embedding_batches` run by the compute."""
        spec = EmbedderSpec(self.settings.embedder, self.settings.embed_batch_size, self._backend(manifest))
        batches = embedding_batches(texts, spec.batch_size)
        if not batches:  # a prune, or a first ingest with nothing in it: only the width is needed
            width = manifest["dimension"] if manifest else load_embedder(*spec).dimension
            return np.zeros((0, width), dtype=np.float32)
        vectors = self.compute.embed(spec, [[texts[i] for i in rows] for rows in batches], self.progress)
        out = np.zeros((len(texts), vectors[0].shape[1]), dtype=np.float32)
        for rows, batch in zip(batches, vectors, strict=True):
            out[rows] = batch
        return out

    def _backend(self, manifest: dict | None) -> str:
        """An index keeps the backend it was first embedded with; a new one takes the setting."""
        return manifest_backend(manifest) if manifest else self.settings.embed_backend

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

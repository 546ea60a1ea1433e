"""Where an index lives: the interface both stores satisfy, and `open_store` to pick one.

A store keeps *generations*: each ingest writes a complete new one beside the live one and makes it
live with one atomic switch, so readers never see half an ingest and an interrupted one changes
nothing. Two stores implement it:

- `local` (rag.store.local, the default): FAISS + SQLite + bm25s files in an index folder.
- `milvus` (rag.store.milvus): one Milvus collection per generation behind an alias, through
  pymilvus; a `.db` path runs Milvus Lite in-process, an http:// URI talks to a Milvus server.

Retrieval, rerank, eval, serve and the LangChain adapter hold an `IndexReader` (or a `Store` to open
one) and never learn which. `ingest.writer.IndexWriter` reads, chunks, embeds and tokenizes files
and hands the result to `Store.commit` as `Changes`: what is computed is separate from where it is
written, so another pipeline feeds the same store: `rag ingest --ray` computes them on Ray
(ingest.ray_pipeline) and the writer commits them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rag.errors import RagError
from rag.settings import Settings

FORMAT_VERSION = 2
STORES = ("local", "milvus")
# ends the stored hash of a file read without some of its pages (scans, no OCR engine there): the
# ingest counts it unchanged until an engine is installed, then reads it again whole
UNREAD_MARK = "+unread"


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    title: str
    page: int | None
    start: int
    end: int
    text: str
    ocr: bool = False  # its page was read from a scan by OCR (ingest.ocr): sources say so


@dataclass(frozen=True)
class StoredFile:
    """One ingested source (a file, or an evaluation record) and the ids of its chunks."""

    path: str
    sha256: str
    size: int
    title: str
    ingested_at: str
    chunk_ids: tuple[int, ...]

    @property
    def chunks(self) -> int:
        return len(self.chunk_ids)

    @property
    def content_sha256(self) -> str:
        return self.sha256.removesuffix(UNREAD_MARK)

    @property
    def complete(self) -> bool:
        """False when some pages were left unread (`UNREAD_MARK`)."""
        return not self.sha256.endswith(UNREAD_MARK)


class NewChunk(NamedTuple):
    page: int | None
    start: int
    end: int
    text: str
    ocr: bool = False


@dataclass
class NewDocument:
    """A source read and chunked, ready to be written. `note` says what of it could not be read
    (scanned pages with no OCR engine here), for the ingest report."""

    path: str
    sha256: str
    size: int
    title: str
    chunks: list[NewChunk]
    note: str = ""


@dataclass
class Changes:
    """One generation's worth of changes: what an ingest pipeline hands to `Store.commit`.

    `vectors` and `tokens` have one row per chunk of `documents`, in order (tokens space-joined).
    `drop` names the sources whose chunks leave (replaced or vanished). `manifest` holds what the
    writer decided (embedder, prefixes, backend, chunker, versions); the store adds its own facts.
    """

    documents: list[NewDocument]
    vectors: np.ndarray
    tokens: list[str]
    drop: set[str]
    manifest: dict


@dataclass
class Committed:
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    files_total: int = 0


class IndexBusy(RagError):
    """Another ingest holds the index's writer lock."""


def manifest_prefixes(manifest: dict) -> tuple[str, str]:
    """(query, passage) prefixes the chunks were embedded with; none in indexes older than them."""
    recorded = manifest.get("prefixes", {})
    return recorded.get("query", ""), recorded.get("passage", "")


def manifest_backend(manifest: dict) -> str:
    """The embedding backend the chunks were embedded with (rag.models.embedder); torch before the
    manifest named it. Ingest into the index and its queries keep to it."""
    return manifest.get("embed_backend", "torch")


class IndexReader(ABC):
    """Read-only view of one generation: what retrieval needs, whichever store holds it."""

    location: str  # how messages name the index
    manifest: dict

    def _check_format(self) -> None:
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise RagError(
                f"index at {self.location} has format {self.manifest.get('format_version')}, "
                f"this rag reads {FORMAT_VERSION}: re-ingest into a new index"
            )

    @property
    def embedder_id(self) -> str:
        return self.manifest["embedder"]

    @property
    def embedder_prefixes(self) -> tuple[str, str]:
        return manifest_prefixes(self.manifest)

    @property
    def embedder_backend(self) -> str:
        return manifest_backend(self.manifest)

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks, best first (exact search)."""

    @abstractmethod
    def lexical_search(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the k best chunks with a positive score, best first.

        BM25 as bm25s computes it by default (Lucene's IDF, k1 1.5, b 0.75), a query token counted
        as often as it occurs, so both stores rank alike."""

    @abstractmethod
    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]: ...

    def close(self) -> None:  # noqa: B027 (a reader with nothing to release need not override it)
        """Release what the reader holds open."""


class Store(ABC):
    """One index: its generations, the writer lock, and the commit of a new generation."""

    location: str

    @abstractmethod
    def generation(self) -> str | None:
        """Name of the live generation; None before the first commit. A changed name tells a
        long-lived reader (`rag serve`) to reopen."""

    @abstractmethod
    def manifest(self) -> dict | None:
        """The live generation's manifest, None before the first commit."""

    @abstractmethod
    def reader(self) -> IndexReader:
        """The live generation, or a RagError saying how to create one."""

    @abstractmethod
    def files(self) -> list[StoredFile]:
        """The live generation's sources, by path."""

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """Held by an ingest: a second writer gets IndexBusy at once, a dead one never blocks."""

    @abstractmethod
    def clean(self) -> None:
        """Remove what crashed ingests left; called with the lock held."""

    @abstractmethod
    def commit(self, changes: Changes) -> Committed:
        """Write a new generation (the live one minus `changes.drop`, plus the new documents) and
        make it live atomically; on any failure the live generation stays as it was."""


def open_store(settings: Settings) -> Store:
    """The store the settings name (`RAG_STORE`, `--store`)."""
    if settings.store == "local":
        from rag.store.local import LocalStore

        return LocalStore(settings.index_dir)
    if settings.store == "milvus":
        from rag.store.milvus import MilvusStore

        uri = settings.milvus_uri or str(settings.index_dir / "milvus.db")
        return MilvusStore(uri, settings.milvus_collection, settings.milvus_token)
    raise RagError(f"RAG_STORE={settings.store!r}: choose one of {', '.join(STORES)}")


def as_store(where: Store | Path | str) -> Store:
    """A store as given, or the local index folder at a path (what callers passed before stores)."""
    if isinstance(where, Store):
        return where
    from rag.store.local import LocalStore

    return LocalStore(Path(where).expanduser())

"""The on-disk index: layout, manifest, and the read side used by retrieval.

Layout of an index folder (written only by `ingest.writer`):

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

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import RagError

FORMAT_VERSION = 2
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
    tokens TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks(path);
"""


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    title: str
    page: int | None
    start: int
    end: int
    text: str


def live_generation(index_dir: Path) -> Path | None:
    """Folder of the generation CURRENT names, or None for a folder with no committed index."""
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        return None
    generation = index_dir / pointer.read_text(encoding="utf-8").strip()
    return generation if (generation / MANIFEST).is_file() else None


def manifest_prefixes(manifest: dict) -> tuple[str, str]:
    """(query, passage) prefixes the chunks were embedded with; none in indexes older than them."""
    recorded = manifest.get("prefixes", {})
    return recorded.get("query", ""), recorded.get("passage", "")


def manifest_backend(manifest: dict) -> str:
    """The embedding backend the chunks were embedded with (rag.models.embedder); torch before the
    manifest named it. Ingest into the index and its queries keep to it."""
    return manifest.get("embed_backend", "torch")


def read_manifest(generation: Path) -> dict:
    return json.loads((generation / MANIFEST).read_text(encoding="utf-8"))


def _load_bm25(generation: Path):
    """The bm25s index and its row -> chunk id map; None for an index with no chunks."""
    if not (generation / BM25_IDS).is_file():
        return None
    import bm25s

    index = bm25s.BM25.load(str(generation / BM25_DIR), allow_pickle=False, show_progress=False)
    return index, np.load(generation / BM25_IDS, allow_pickle=False)


class IndexReader:
    """Read-only view of one generation: vector search and chunk lookup."""

    def __init__(self, index_dir: Path) -> None:
        import faiss

        generation = live_generation(index_dir)
        if generation is None:
            raise RagError(f"no index at {index_dir}: run `rag ingest FOLDER --index {index_dir}` first")
        self.index_dir = index_dir
        self.manifest = read_manifest(generation)
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise RagError(
                f"index at {index_dir} has format {self.manifest.get('format_version')}, "
                f"this rag reads {FORMAT_VERSION}: re-ingest into a new --index folder"
            )
        self.generation = generation
        self.vectors = faiss.read_index(str(generation / VECTORS))
        self._bm25 = None
        self.db = sqlite3.connect(f"file:{generation / CHUNKS_DB}?mode=ro", uri=True, check_same_thread=False)

    @property
    def embedder_id(self) -> str:
        return self.manifest["embedder"]

    @property
    def embedder_prefixes(self) -> tuple[str, str]:
        return manifest_prefixes(self.manifest)

    @property
    def embedder_backend(self) -> str:
        return manifest_backend(self.manifest)

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks, best first."""
        if len(self) == 0 or k <= 0:
            return []
        scores, ids = self.vectors.search(query_vector.reshape(1, -1).astype(np.float32), min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def lexical_search(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the k best chunks with a positive score, best first."""
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
        rows = self.db.execute(f"SELECT id, path, title, page, start, end, text FROM chunks WHERE id IN ({marks})", ids)
        return {row[0]: StoredChunk(*row) for row in rows}

    def close(self) -> None:
        self.db.close()

"""Dense retrieval: embed the query, search FAISS, return hits with their chunks."""

from __future__ import annotations

from pathlib import Path

from rag.embedder import Embedder, load_embedder
from rag.errors import RagError
from rag.hits import Hit
from rag.store import IndexReader


def _check_embedder(index: IndexReader, embedder_id: str) -> None:
    """Vectors from two embedders live in unrelated spaces: comparing them returns noise."""
    if embedder_id != index.embedder_id:
        raise RagError(
            f"index {index.index_dir} was built with embedder '{index.embedder_id}' but the query "
            f"would use '{embedder_id}': unset RAG_EMBEDDER or re-ingest with the new embedder"
        )


class DenseRetriever:
    def __init__(self, index: IndexReader, embedder: Embedder) -> None:
        _check_embedder(index, embedder.model_id)
        self.index = index
        self.embedder = embedder

    @classmethod
    def open(cls, index_dir: Path, embedder_id: str | None = None) -> DenseRetriever:
        """Open the index; with no embedder given, use the one the index was built with."""
        index = IndexReader(index_dir)
        if len(index) == 0:
            raise RagError(f"index {index_dir} is empty: run `rag ingest FOLDER --index {index_dir}`")
        _check_embedder(index, embedder_id or index.embedder_id)  # before loading a model we would refuse
        return cls(index, load_embedder(embedder_id or index.embedder_id))

    def retrieve(self, query: str, k: int) -> list[Hit]:
        if not query.strip():
            raise RagError("empty question")
        found = self.index.search(self.embedder.embed([query])[0], k)
        chunks = self.index.chunks([chunk_id for chunk_id, _ in found])
        return [
            Hit(chunk=chunks[chunk_id], retrieval_score=score, retrieval_rank=rank)
            for rank, (chunk_id, score) in enumerate(found, 1)
            if chunk_id in chunks
        ]

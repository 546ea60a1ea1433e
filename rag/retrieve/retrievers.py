"""First-stage retrievers over one index (any store): dense, lexical (BM25) and their fusion
(rag.retrieve.fusion).

Every retriever returns `Hit`s best first; `open_retriever(name, …)` builds one by name, so the
CLI, `rag eval` arms and the LangChain adapter share one registry.
"""

from __future__ import annotations

from pathlib import Path

from rag.errors import RagError
from rag.models.embedder import Embedder, load_embedder, prefixes
from rag.retrieve.fusion import FITTED_FUSION, fuse
from rag.retrieve.hits import Hit
from rag.retrieve.lexical import tokenize
from rag.store import IndexReader, Store, as_store


def _check_embedder(index: IndexReader, embedder_id: str) -> None:
    """Vectors from two embedders, or one embedder with other prefixes, live in unrelated spaces:
    comparing them returns noise."""
    if embedder_id != index.embedder_id:
        raise RagError(
            f"index {index.location} was built with embedder '{index.embedder_id}' but the query "
            f"would use '{embedder_id}': unset RAG_EMBEDDER or re-ingest with the new embedder"
        )
    if prefixes(embedder_id) != index.embedder_prefixes:
        raise RagError(
            f"index {index.location} was embedded with passage prefix {index.embedder_prefixes[1]!r}, this "
            f"rag embeds '{embedder_id}' with {prefixes(embedder_id)[1]!r}: re-ingest into a new --index folder"
        )


Where = Store | Path  # a store, or the local index folder at a path


def open_index(where: Where) -> IndexReader:
    index = as_store(where).reader()
    if len(index) == 0:
        raise RagError(f"index {index.location} is empty: run `rag ingest FOLDER` into it first")
    return index


def _hits(index: IndexReader, found: list[tuple[int, float]]) -> list[Hit]:
    chunks = index.chunks([chunk_id for chunk_id, _ in found])
    return [
        Hit(chunk=chunks[chunk_id], retrieval_score=score, retrieval_rank=rank)
        for rank, (chunk_id, score) in enumerate(found, 1)
        if chunk_id in chunks
    ]


def _check_query(query: str) -> None:
    if not query.strip():
        raise RagError("empty question")


class DenseRetriever:
    """Cosine similarity of normalised embeddings, exact search in the store."""

    name = "dense"

    def __init__(self, index: IndexReader, embedder: Embedder) -> None:
        _check_embedder(index, embedder.model_id)
        self.index = index
        self.embedder = embedder

    @classmethod
    def open(cls, where: Where, embedder_id: str | None = None) -> DenseRetriever:
        """Open the index; with no embedder given, use the one the index was built with."""
        index = open_index(where)
        _check_embedder(index, embedder_id or index.embedder_id)  # before loading a model we would refuse
        return cls(index, load_embedder(embedder_id or index.embedder_id, backend=index.embedder_backend))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.index.search(self.embedder.embed_queries([query])[0], k)

    def retrieve(self, query: str, k: int) -> list[Hit]:
        _check_query(query)
        return _hits(self.index, self.search(query, k))


class BM25Retriever:
    """BM25 over Kiwi morphemes (Korean) and stemmed words (English); see rag.retrieve.lexical."""

    name = "bm25"

    def __init__(self, index: IndexReader) -> None:
        self.index = index
        tokenize("한국어")  # load Kiwi now, so no question's retrieve time includes a model load

    @classmethod
    def open(cls, where: Where) -> BM25Retriever:
        return cls(open_index(where))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.index.lexical_search(tokenize(query), k)

    def retrieve(self, query: str, k: int) -> list[Hit]:
        _check_query(query)
        return _hits(self.index, self.search(query, k))


FUSION_DEPTH = 50  # candidates taken from each half before fusing


class HybridRetriever:
    """Dense and BM25 fused by `fuse`, with the weighting fitted for the index's embedder if any."""

    name = "hybrid"

    def __init__(self, dense: DenseRetriever, lexical: BM25Retriever) -> None:
        self.dense, self.lexical = dense, lexical
        self.index, self.embedder = dense.index, dense.embedder
        self.fitted = FITTED_FUSION.get(dense.embedder.model_id)

    @classmethod
    def open(cls, where: Where, embedder_id: str | None = None) -> HybridRetriever:
        dense = DenseRetriever.open(where, embedder_id)
        return cls(dense, BM25Retriever(dense.index))

    def retrieve(self, query: str, k: int) -> list[Hit]:
        _check_query(query)
        depth = max(k, FUSION_DEPTH)
        fused = fuse(self.dense.search(query, depth), self.lexical.search(query, depth), self.fitted)
        return _hits(self.index, fused[:k])


RETRIEVERS = ("hybrid", "dense", "bm25")


def open_retriever(name: str, where: Where, embedder_id: str | None = None):
    """A retriever by name; BM25 alone loads no embedding model."""
    if name == "dense":
        return DenseRetriever.open(where, embedder_id)
    if name == "bm25":
        return BM25Retriever.open(where)
    if name == "hybrid":
        return HybridRetriever.open(where, embedder_id)
    raise RagError(f"unknown retriever '{name}': choose from {', '.join(RETRIEVERS)}")

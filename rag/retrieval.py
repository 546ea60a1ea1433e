"""First-stage retrieval over one index (any store): dense, lexical (BM25) and their fusion.

Every retriever returns `Hit`s best first; `open_retriever(name, …)` builds one by name, so the
CLI, `rag eval` arms and the LangChain adapter share one registry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.hits import Hit
from rag.lexical import tokenize
from rag.models.embedder import Embedder, load_embedder, prefixes
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
    """BM25 over Kiwi morphemes (Korean) and stemmed words (English); see rag.lexical."""

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
CONFIDENCE_AT = 5  # the rank whose score the top score is compared with
CONFIDENCE_POWER = 2  # sharpens the weights: a flat list gets next to none


def confidence(scores: list[float], at: int = CONFIDENCE_AT) -> float:
    """How peaked a ranked list is: (s1 - s_at) / s1, in [0, 1] (s_at: the score at rank `at`).

    A retriever that recognises the answer puts it well above the rest; one that cannot read the
    query (MiniLM on Korean, BM25 on a paraphrase) returns a flat list. The ratio is scale-free, so
    it compares cosine similarities with BM25 scores.
    """
    if len(scores) < 2 or scores[0] <= 0:
        return 0.0
    return max(0.0, (scores[0] - scores[min(at, len(scores)) - 1]) / scores[0])


def _min_max(found: list[tuple[int, float]]) -> dict[int, float]:
    if not found:
        return {}
    low, high = min(s for _, s in found), max(s for _, s in found)
    return {i: (s - low) / (high - low) if high > low else 1.0 for i, s in found}


def _z_scores(found: list[tuple[int, float]]) -> dict[int, float]:
    """Scores in standard deviations from their list's mean. Unlike min-max, which stretches every
    list to [0, 1], a flat list stays flat and one far-ahead first stays far ahead."""
    if not found:
        return {}
    scores = np.array([s for _, s in found], dtype=np.float64)
    spread = float(scores.std()) or 1.0
    return {i: (s - float(scores.mean())) / spread for i, s in found}


# Dense weight = clip(base + gain * (c_dense - c_bm25)) over z-scores, for embedders whose (base, gain)
# was fitted (bench/fusion_fit.py, held-out questions of the five evaluation sets; README "Retrieval").
FITTED_FUSION = {"multilingual-e5-small": (0.925, 0.5)}


def fuse(
    dense: list[tuple[int, float]], lexical: list[tuple[int, float]], fitted: tuple[float, float] | None = None
) -> list[tuple[int, float]]:
    """Convex combination of the two lists' normalised scores, the dense weight chosen per query.

    With `fitted` (base, gain), an embedder known to read both languages: z-scores, and a dense
    weight of base + gain times the difference of the lists' confidences, clipped to [0, 1].
    multilingual-e5-small's (0.925, 0.5) had the best worst margin against the better half on
    held-out questions (KorQuAD 300-1299, HotpotQA 300-499, ClapNQ 300-599, MS MARCO ko and en
    evaluation splits from 300: none below it), among min-max and z-scores with shifted weights,
    fixed weights, reciprocal rank fusion and the rule below.

    Without, min-max scores and the confidence rule: dense weight = c_d² / (c_d² + c_b²), so a half
    that cannot read the query (MiniLM on Korean) returns a flat list and gets next to no weight.
    Its rank (5) and power (2) were chosen on the held-out KorQuAD, HotpotQA and ClapNQ questions
    with MiniLM; equal-weight reciprocal rank fusion lost 0.78 hit@1 on Korean there to a useless
    dense half.
    """
    c_dense, c_lexical = confidence([s for _, s in dense]), confidence([s for _, s in lexical])
    normalise = _z_scores if fitted else _min_max
    if not lexical or not dense:
        weight = 1.0 if dense else 0.0
    elif fitted:
        base, gain = fitted
        weight = min(1.0, max(0.0, base + gain * (c_dense - c_lexical)))
    else:
        a, b = c_dense**CONFIDENCE_POWER, c_lexical**CONFIDENCE_POWER
        weight = a / (a + b) if a + b > 0 else 0.5
    fused: dict[int, float] = {}
    for chunk_id, score in normalise(dense).items():
        fused[chunk_id] = weight * score
    for chunk_id, score in normalise(lexical).items():
        fused[chunk_id] = fused.get(chunk_id, 0.0) + (1 - weight) * score
    return sorted(fused.items(), key=lambda item: -item[1])


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

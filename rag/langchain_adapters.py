"""Our retriever and reranker behind LangChain's interfaces, for use inside users' own chains.

`RagRetriever` is a `BaseRetriever` over an index written by `rag ingest` (either store); `RagReranker` is a
`BaseDocumentCompressor` (drop-in for `ContextualCompressionRetriever` or any LCEL chain). Scores
and chunk metadata travel in `Document.metadata`. Only langchain-core is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.rerank.reranker import Reranker, blend, sigmoid
from rag.retrieve.hits import Hit
from rag.retrieve.retrievers import open_retriever
from rag.settings import Settings
from rag.store import Store, open_store


def hit_to_document(hit: Hit) -> Document:
    c = hit.chunk
    metadata = {
        "source": c.path,
        "title": c.title,
        "page": c.page,
        "ocr": c.ocr,
        "chunk_id": c.id,
        "start": c.start,
        "end": c.end,
        "retrieval_score": hit.retrieval_score,
        "retrieval_rank": hit.retrieval_rank,
    }
    if hit.rerank_score is not None:
        metadata |= {"rerank_score": hit.rerank_score, "rerank_sigmoid": hit.rerank_prob}
    return Document(page_content=c.text, metadata=metadata, id=str(c.id))


class RagRetriever(BaseRetriever):
    """Retrieval over a `rag` index: `RagRetriever.from_index(path, k=20, retriever="hybrid")`, or
    `RagRetriever.from_settings()` for the index the `RAG_*` settings name (`RAG_STORE`, …)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    retriever: Any
    k: int = 20

    @classmethod
    def from_index(cls, index: str | Path | Store, k: int = 20, retriever: str = "hybrid") -> RagRetriever:
        """A local index folder, or any store (`rag.store.open_store`)."""
        where = index if isinstance(index, Store) else Path(index).expanduser()
        return cls(retriever=open_retriever(retriever, where), k=k)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, k: int = 20) -> RagRetriever:
        settings = settings or Settings()
        return cls(retriever=open_retriever(settings.retriever, open_store(settings)), k=k)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [hit_to_document(hit) for hit in self.retriever.retrieve(query, self.k)]


class RagReranker(BaseDocumentCompressor):
    """Cross-encoder rerank of any LangChain documents: `RagReranker.load("bge-reranker-v2-m3", top_n=4)`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    reranker: Reranker
    top_n: int = 4

    @classmethod
    def load(cls, name: str, top_n: int = 4, batch_size: int = 16, max_length: int = 512) -> RagReranker:
        return cls(reranker=Reranker(name, batch_size, max_length), top_n=top_n)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        scores = self.reranker.score(query, [doc.page_content for doc in documents])
        # a blend needs first-stage scores: ours carry them, other retrievers' order stands in
        first = [doc.metadata.get("retrieval_score") for doc in documents]
        if any(not isinstance(value, int | float) for value in first):
            first = [float(len(documents) - i) for i in range(len(documents))]
        final = blend(np.array(first, dtype=np.float64), scores, self.reranker.logit_weight)
        order = sorted(range(len(documents)), key=lambda i: -final[i])[: self.top_n]
        return [
            Document(
                page_content=documents[i].page_content,
                metadata=documents[i].metadata
                | {"rerank_score": float(scores[i]), "rerank_sigmoid": sigmoid(float(scores[i]))},
                id=documents[i].id,
            )
            for i in order
        ]

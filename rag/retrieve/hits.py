"""The unit that flows from retrieval through rerank to the prompt and the printed sources."""

from __future__ import annotations

from dataclasses import dataclass

from rag.store import StoredChunk


@dataclass
class Hit:
    chunk: StoredChunk
    retrieval_score: float
    retrieval_rank: int
    rerank_score: float | None = None  # raw cross-encoder logit
    rerank_prob: float | None = None  # sigmoid of the logit: comparable across queries
    rerank_relative: float | None = None  # softmax over this candidate set: relative only
    final_score: float | None = None  # what the reranked order follows: the logit, or its blend

    @property
    def source(self) -> str:
        return self.chunk.path

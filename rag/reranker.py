"""Cross-encoder reranking of retrieved candidates (sentence-transformers `CrossEncoder`).

A cross-encoder reads query and passage together, so it judges relevance far better than the
bi-encoder that retrieved them, at a cost paid per pair: only the candidates are scored.
On CPU the waste is padding, so pairs are sorted by length before batching; scores are mapped
back to the original order, so sorting changes speed only, never results.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.hits import Hit
from rag.hub import load_model
from rag.quiet import quiet_libraries

PRESETS = {
    "bge-reranker-v2-m3": "BAAI/bge-reranker-v2-m3",
    "ko-reranker": "Dongjin-kr/ko-reranker",
}
NO_RERANK = {"none", "off", ""}


class RerankerUnavailable(RagError):
    """The reranker model could not be loaded (offline and not cached, bad path, …)."""


def sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


def resolve_reranker(name: str) -> str:
    """Preset short name → hub id; anything else (hub id or local path) is used as given."""
    return PRESETS.get(name, name)


class Reranker:
    def __init__(self, name: str, batch_size: int = 16, max_length: int = 512) -> None:
        quiet_libraries()
        import torch
        from sentence_transformers import CrossEncoder

        self.name = name
        self.model_id = resolve_reranker(name)
        self.batch_size = batch_size
        try:
            self.model = load_model(CrossEncoder, self.model_id, device="cpu", max_length=max_length)
        except (OSError, ValueError) as exc:
            where = "local folder" if Path(self.model_id).exists() else "hub id"
            raise RerankerUnavailable(
                f"reranker '{name}' ({where} {self.model_id}) could not be loaded: "
                f"{str(exc).splitlines()[0].rstrip('.')}. Fix: download it once with network access (it is then "
                "cached), point RAG_RERANKER at a local copy, or use --reranker none"
            ) from exc
        self._identity = torch.nn.Identity()

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Raw relevance logits for (query, passage) pairs, in the order of `passages`."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
        sorted_scores = self.model.predict(
            [(query, passages[i]) for i in order],
            batch_size=self.batch_size,
            activation_fn=self._identity,
            show_progress_bar=False,
        )
        scores = np.empty(len(passages), dtype=np.float32)
        scores[order] = np.asarray(sorted_scores, dtype=np.float32).reshape(len(passages))
        return scores

    def rerank(self, query: str, hits: list[Hit], top_n: int | None = None) -> list[Hit]:
        """Score every hit, sort by score (ties keep retrieval order), keep the best `top_n`."""
        raw = self.score(query, [hit.chunk.text for hit in hits])
        if len(raw):
            relative = np.exp(raw - raw.max())
            relative /= relative.sum()
            for hit, logit, rel in zip(hits, raw, relative):
                hit.rerank_score = float(logit)
                hit.rerank_prob = sigmoid(float(logit))
                hit.rerank_relative = float(rel)
        ranked = sorted(hits, key=lambda h: -(h.rerank_score or 0.0))
        return ranked if top_n is None else ranked[:top_n]


@lru_cache(maxsize=4)
def load_reranker(name: str, batch_size: int = 16, max_length: int = 512) -> Reranker | None:
    """None for `none`; cached so a chat session loads each model once."""
    if name.strip().lower() in NO_RERANK:
        return None
    return Reranker(name, batch_size, max_length)

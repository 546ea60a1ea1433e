"""Fit how much the cross-encoder's logit weighs against the first-stage score (`logit_weight`).

The held-out validation queries are retrieved the way `rag ask` retrieves (the configured
retriever, `candidates` deep) from an index of their file's passages; the cross-encoder scores
every candidate once, and each weight on a grid (None: the logits alone) is judged by MRR@10 of
the blended order (see rag.rerank.reranker.blend). Among weights within `tolerance` of the best MRR the
smallest is kept: on validation they are equally good, and more first stage is the safer bet on
documents unlike the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.writer import Progress
from rag.rerank.reranker import BLEND_FILE, Reranker, blend, reranker_options
from rag.retrieve.retrievers import open_retriever
from rag.settings import Settings
from rag.training.data import Example, corpus_index, passage_id

GRID: list[float | None] = [0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, None]


@dataclass
class Scored:
    """One validation query: first-stage scores, logits and which candidates are positives."""

    retrieval: np.ndarray
    logits: np.ndarray
    gold: np.ndarray


def mrr_at_10(rows: list[Scored], weight: float | None) -> float:
    total = 0.0
    for row in rows:
        order = np.argsort(-blend(row.retrieval, row.logits, weight), kind="stable")
        ranks = [r for r, i in enumerate(order[:10], 1) if row.gold[i]]
        total += 1.0 / ranks[0] if ranks else 0.0
    return total / max(1, len(rows))


def score_validation(
    reranker: Reranker,
    files: list[list[Example]],
    validation: list[Example],
    settings: Settings,
    progress: Progress | None = None,
) -> list[Scored]:
    """Retrieve each validation query from its own file's passages and score the candidates."""
    held_out = {id(e) for e in validation}
    rows = []
    for examples in files:
        mine = [e for e in examples if id(e) in held_out]
        if not mine:
            continue
        retriever = open_retriever(settings.retriever, corpus_index(examples, settings, progress))
        for n, example in enumerate(mine, 1):
            hits = retriever.retrieve(example.query, settings.candidates)
            positives = {passage_id(p) for p in example.positives}
            gold = np.array([h.chunk.path in positives for h in hits])
            if gold.any():  # a query whose positive was not retrieved cannot be reordered
                logits = reranker.score(example.query, [h.chunk.text for h in hits])
                rows.append(Scored(np.array([h.retrieval_score for h in hits]), logits, gold))
            if progress:
                progress("fitting blend weight", n, len(mine))
    return rows


def fit_weight(rows: list[Scored], tolerance: float = 0.002) -> dict:
    curve = {w: mrr_at_10(rows, w) for w in GRID}
    best = max(curve.values())
    weight = next(w for w in GRID if curve[w] >= best - tolerance)  # GRID runs from most first stage to none
    return {
        "logit_weight": weight,
        "val_mrr@10": curve[weight],
        "val_mrr@10_rerank_only": curve[None],
        "val_mrr@10_first_stage_only": curve[0.0],
        "queries": len(rows),
        "curve": {str(w): round(v, 4) for w, v in curve.items()},
    }


def calibrate(
    model_dir: Path,
    files: list[list[Example]],
    validation: list[Example],
    settings: Settings,
    progress: Progress | None = None,
) -> dict:
    """Fit the weight for the model in `model_dir` and write it next to the model."""
    reranker = Reranker(str(model_dir), **reranker_options(settings, str(model_dir)))
    rows = score_validation(reranker, files, validation, settings, progress)
    fitted = fit_weight(rows) | {"retriever": settings.retriever, "candidates": settings.candidates}
    (model_dir / BLEND_FILE).write_text(json.dumps(fitted, indent=2), encoding="utf-8")
    return fitted

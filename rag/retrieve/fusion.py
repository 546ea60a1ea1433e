"""How the hybrid retriever merges the dense and BM25 lists: each list's confidence decides its weight
per query, so a half that cannot read a query (a flat list) barely counts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rag.retrieve.hits import Hit

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


RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion: rank 1 vs 10 weighs 1.15x


def reciprocal_rank(lists: list[list[Hit]], k: int) -> list[Hit]:
    """Several ranked lists of one index merged by reciprocal rank (sum of 1 / (RRF_K + rank)):
    scale-free, so lists from different queries combine. The best `k`, re-ranked, the fused score
    as their retrieval score."""
    scores: dict[int, float] = {}
    first: dict[int, Hit] = {}
    for hits in lists:
        for rank, hit in enumerate(hits, 1):
            scores[hit.chunk.id] = scores.get(hit.chunk.id, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(hit.chunk.id, hit)
    order = sorted(scores, key=lambda chunk_id: -scores[chunk_id])[:k]
    return [replace(first[i], retrieval_score=scores[i], retrieval_rank=rank) for rank, i in enumerate(order, 1)]

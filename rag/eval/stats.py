"""How sure is a difference between two arms? A paired percentile bootstrap over the questions.

Both arms answer the same questions, so the per-question differences carry the comparison: their
mean is the effect, and resampling questions with replacement shows how much of it a different
draw of questions could move. Seeded, so a report can be regenerated exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0
CONFIDENCE = 0.95
_BLOCK_CELLS = 2_000_000  # resample in blocks of about this many indices: memory stays bounded


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int


def paired_bootstrap(
    treated: Sequence[float],
    baseline: Sequence[float],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Mean of `treated - baseline` (paired by position) and its percentile bootstrap interval."""
    if len(treated) != len(baseline) or not treated:
        raise ValueError(f"need equally long, non-empty samples (got {len(treated)} and {len(baseline)})")
    differences = np.asarray(treated, dtype=float) - np.asarray(baseline, dtype=float)
    n = len(differences)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        means[start : start + rows] = differences[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(differences.mean()), float(low), float(high), n)

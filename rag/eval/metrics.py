"""Retrieval and answer metrics, each checked against hand-computed cases in tests/test_metrics.py.

Retrieval ranks are over distinct source documents: a document's rank is the rank of its first
chunk, so splitting a document into many chunks cannot inflate a score.
Answers: English uses SQuAD's normalisation (lower case, no punctuation or articles, word tokens);
Korean uses KorQuAD's character-level F1 with spaces and punctuation removed; accuracy is
*Lost in the Middle*'s (a normalised gold answer contained in the answer). ROUGE-L runs over
tokens that keep Hangul (a common ROUGE tokenizer drops every non-ASCII character, which scores
every Korean answer as empty).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from rag.hangul import HANGUL

CUTOFFS = (1, 3, 5, 10, 20)


def document_ranking(chunk_sources: Iterable[str]) -> list[str]:
    """Distinct documents in order of their first chunk."""
    return list(dict.fromkeys(chunk_sources))


def hit_at(ranking: Sequence[str], gold: set[str], k: int) -> float:
    return float(any(doc in gold for doc in ranking[:k]))


def recall_at(ranking: Sequence[str], gold: set[str], k: int) -> float:
    return len(gold.intersection(ranking[:k])) / len(gold) if gold else 0.0


def mrr_at(ranking: Sequence[str], gold: set[str], k: int) -> float:
    for rank, doc in enumerate(ranking[:k], 1):
        if doc in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranking: Sequence[str], gold: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], 1) if doc in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def retrieval_metrics(ranking: Sequence[str], gold: set[str], max_k: int) -> dict[str, float]:
    """hit/recall/mrr/ndcg at every cutoff up to `max_k` (the candidate count)."""
    out: dict[str, float] = {}
    for k in (k for k in CUTOFFS if k <= max_k):
        out[f"hit@{k}"] = hit_at(ranking, gold, k)
        out[f"recall@{k}"] = recall_at(ranking, gold, k)
        out[f"mrr@{k}"] = mrr_at(ranking, gold, k)
        out[f"ndcg@{k}"] = ndcg_at(ranking, gold, k)
    return out


def is_korean(text: str) -> bool:
    return bool(HANGUL.search(text))


def _normalize_en(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _normalize_ko(text: str) -> str:
    """KorQuAD: drop spaces and punctuation (ASCII and Unicode), compare characters."""
    return "".join(ch for ch in text.lower() if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def _f1(prediction: list[str], truth: list[str]) -> float:
    common = sum((Counter(prediction) & Counter(truth)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    korean = any(is_korean(a) for a in answers)
    norm = _normalize_ko if korean else _normalize_en
    return float(any(norm(prediction) == norm(a) for a in answers))


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Best F1 over the gold answers: words for English, characters for Korean."""
    best = 0.0
    for answer in answers:
        if is_korean(answer):
            best = max(best, _f1(list(_normalize_ko(prediction)), list(_normalize_ko(answer))))
        else:
            best = max(best, _f1(_normalize_en(prediction).split(), _normalize_en(answer).split()))
    return best


_CITATION = re.compile(r"\s*\[\d+(?:\s*[,\-–]\s*\d+)*\]")


def strip_citations(answer: str) -> str:
    """Drop the [n] markers the prompt asks for: a cited "[2]" must not count as the gold answer "2"."""
    return _CITATION.sub("", answer).strip()


def accuracy(prediction: str, answers: Sequence[str]) -> float:
    """*Lost in the Middle*'s accuracy: 1 if any normalised gold answer occurs in the normalised answer.

    Long, cited answers rarely match exactly; containment credits them when they state the answer.
    Each gold answer is normalised by its own script (KorQuAD's for Hangul, SQuAD's otherwise), and
    one that normalises to nothing is skipped rather than contained in everything.
    """
    for answer in answers:
        norm = _normalize_ko if is_korean(answer) else _normalize_en
        gold = norm(answer)
        if gold and gold in norm(prediction):
            return 1.0
    return 0.0


def rouge_tokens(text: str) -> list[str]:
    """Lower-cased word tokens of letters and digits in any script (Hangul included)."""
    return re.findall(r"\w+", text.lower())


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, answers: Sequence[str]) -> float:
    """ROUGE-L F-measure, best over the gold answers."""
    pred = rouge_tokens(prediction)
    best = 0.0
    for answer in answers:
        ref = rouge_tokens(answer)
        lcs = _lcs(pred, ref) if pred and ref else 0
        if lcs:
            precision, recall = lcs / len(pred), lcs / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


_DECLINES = re.compile(
    r"(i (do not|don't|cannot|can't) (know|answer|find)|not (mentioned|provided|stated|specified|found)"
    r"|no (information|answer|mention)|(cannot|can't|unable to) (be )?(answer|determine|find)"
    r"|((do|does|did) not|don't|doesn't|didn't) (say|mention|contain|provide|include|specify|state)"
    r"|알 수 없|모르겠|모릅니다|찾을 수 없|나와 있지 않|언급되어 있지 않|언급이 없|정보가 없|답할 수 없)",
    re.IGNORECASE,
)


def declines(answer: str) -> bool:
    """Does the answer say it cannot answer? (unanswerable questions count as correct then)"""
    return bool(_DECLINES.search(answer))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

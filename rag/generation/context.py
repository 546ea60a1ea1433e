"""Choose the prompt's context sentence by sentence: the best sentences of the top passages, each
with its neighbours, until a token budget.

Why: on a 2-core CPU the prompt is the cost of an answer (~150 tokens/s on OpenVINO), and whole
passages are mostly not about the question (docs_corpus's holds notice joined with its neighbours
is ~1,000 tokens for one sentence of answer). Each sentence of the given passages is scored against
the question (cosine with the retriever's embedder when there is one, else shared words), read
with its document's title before it (a sentence alone loses what it is about: "5 days to collect"
in a purchase-request notice scores as high as the holds notice's "3 days" without it), with a
small prior for its passage's rank; the best go in with the sentence before and after (a fact is
often split from its subject), then the next best, until `budget` tokens or until the next best
scores more than `FLOOR` below the best: filling the budget with weak sentences cost time and
gave a 1.5B model distractors to answer from (docs_corpus, OpenVINO, budget 800: 17/28 right at
5.4 s first token p50 without the floor, 19/28 at 4.4 s with it; docs/answers.md#context).

The kept sentences are regrouped by file and page, in document order, one <document> per group,
the group with the best sentence first; gaps between kept runs read " … ". Each group's chunk
keeps its page and its start/end offsets span the kept text, so a citation [n] still points at
the right place in the right file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rag.generation.budget import OVERHEAD, _terms
from rag.retrieve.hits import Hit

CONTEXT_VERSION = "2"  # bump when the choice changes: answer caches key on it
GAP = " … "
RANK_PRIOR = 0.02  # score taken off per passage rank: the first stage's order breaks near-ties
NEIGHBOURS = 1  # sentences kept on each side of a chosen one
FLOOR = 0.05  # a sentence this far below the best is not worth its tokens (in e5 cosine units)
_BREAK = re.compile(r"(?<=[.!?。])\s+|\n+")

Scorer = Callable[[str, list[str]], Sequence[float]]


@dataclass
class _Sentence:
    passage: int  # rank of its passage in the given list
    index: int  # position among its passage's sentences
    start: int  # offsets in the passage's chunk text
    end: int
    text: str
    tokens: int = 0
    score: float = 0.0


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: a break after . ! ? 。 followed by space, or a line break.
    A decimal point ("1.5") or a date ("2024.03.01") is not followed by space, so stays whole."""
    spans, start = [], 0
    for match in _BREAK.finditer(text):
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def lexical_scorer(question: str, sentences: list[str]) -> list[float]:
    """The share of the question's words (and Hangul bigrams) a sentence holds."""
    wanted = _terms(question)
    return [len(_terms(s) & wanted) / max(len(wanted), 1) for s in sentences]


def embedding_scorer(embedder) -> Scorer:
    """Cosine of each sentence to the question with the retriever's own (normalised) embedder."""

    def score(question: str, sentences: list[str]) -> np.ndarray:
        query = embedder.embed_queries([question])[0]
        return embedder.embed_passages(sentences) @ query

    return score


def select_context(
    hits: list[Hit],
    question: str,
    budget: int,
    count: Callable[[str], int],
    scorer: Scorer = lexical_scorer,
    floor: float | None = None,
) -> list[Hit]:
    """The best sentences of `hits` (ranked passages) with their neighbours, within `budget` tokens
    and, with `floor`, within `floor` of the best sentence's score (the scorer's units)."""
    sentences: list[_Sentence] = []
    by_passage: list[list[_Sentence]] = []
    for p, hit in enumerate(hits):
        own = [_Sentence(p, i, s, e, hit.chunk.text[s:e]) for i, (s, e) in enumerate(split_sentences(hit.chunk.text))]
        by_passage.append(own)
        sentences += own
    if not sentences:
        return []
    titled = [f"{hits[s.passage].chunk.title}: {s.text}" for s in sentences]
    for sentence, score in zip(sentences, scorer(question, titled), strict=True):
        sentence.score = float(score) - RANK_PRIOR * sentence.passage
        sentence.tokens = count(sentence.text) + 1
    lowest = max(s.score for s in sentences) - floor if floor is not None else -np.inf
    groups = {_group(hits[p]) for p in range(len(hits))}
    left = budget - OVERHEAD * min(len(groups), 1)
    chosen: set[tuple[int, int]] = set()
    opened: set[tuple] = set()
    for best in sorted(sentences, key=lambda s: -s.score):
        if best.score < lowest:
            break
        own = by_passage[best.passage]
        around = own[max(0, best.index - NEIGHBOURS) : best.index + NEIGHBOURS + 1]
        for candidate in (around, [best]):
            new = [s for s in candidate if (s.passage, s.index) not in chosen]
            group = _group(hits[best.passage])
            cost = sum(s.tokens for s in new) + (OVERHEAD if group not in opened and opened else 0)
            if new and cost <= left:
                chosen.update((s.passage, s.index) for s in new)
                opened.add(group)
                left -= cost
                break
    return _regroup(hits, by_passage, chosen, sentences)


def _group(hit: Hit) -> tuple:
    return (hit.chunk.path, hit.chunk.page)


def _regroup(
    hits: list[Hit], by_passage: list[list[_Sentence]], chosen: set[tuple[int, int]], sentences: list[_Sentence]
) -> list[Hit]:
    """One hit per (file, page): its kept sentences in document order, best group first."""
    spans: dict[tuple, list[tuple[int, int, str, int]]] = {}  # absolute start, end, text, passage
    best: dict[tuple, float] = {}
    first_hit: dict[tuple, Hit] = {}
    for p, own in enumerate(by_passage):
        chunk = hits[p].chunk
        for s in own:
            if (p, s.index) not in chosen:
                continue
            key = _group(hits[p])
            spans.setdefault(key, []).append((chunk.start + s.start, chunk.start + s.end, s.text, p))
            best[key] = max(best.get(key, -np.inf), s.score)
            first_hit.setdefault(key, hits[p])
    out = []
    for key in sorted(spans, key=lambda k: -best[k]):
        parts = sorted(set(spans[key]))
        text, end = "", None
        for start, stop, sentence, p in parts:
            if end is not None and start < end:  # overlapping chunks: the sentence was already read
                continue
            if end is None:
                text = sentence
            else:
                between = _between(hits, p, end, start)
                text += (between if between is not None else GAP) + sentence
            end = stop
        hit = first_hit[key]
        chunk = replace(hit.chunk, text=text, start=parts[0][0], end=max(s[1] for s in parts))
        out.append(replace(hit, chunk=chunk))
    return out


def _between(hits: list[Hit], p: int, end: int, start: int) -> str | None:
    """The original text between two kept sentences when it is only whitespace (adjacent
    sentences keep their line breaks), else None: a gap."""
    chunk = hits[p].chunk
    if chunk.start <= end <= start <= chunk.end:
        between = chunk.text[end - chunk.start : start - chunk.start]
        if not between.strip():
            return between
    return None

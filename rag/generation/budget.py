"""Fit the ranked passages into a token budget, trimming a passage to its best sentences.

On a 2-core CPU the prompt is the cost of an answer (the 1.5B reads ~50 tokens/s), so the budget
counts real tokens when the endpoint can tokenize (the local llama.cpp server's /tokenize) and an
upper-bound estimate otherwise. A passage that does not fit whole keeps the sentences that share
most with the question, in their original order, rather than being dropped.

Neighbouring chunks of one file (they share up to RAG_CHUNK_OVERLAP characters) are first joined
into one passage: the overlap is read once, and a fact split from its context by a chunk boundary
reads as one text again (docs_corpus's holds notice: "3일 동안 보관합니다" ends one chunk, "이 기간
안에 찾아가지 않으면 다음 예약자에게 넘어갑니다" opens the next, and the model answered from the
second alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from rag.hangul import HANGUL
from rag.retrieve.hits import Hit

OVERHEAD = 20  # tokens of the <document> tags and title around a passage
MIN_TRIMMED = 40  # a trimmed passage shorter than this is not worth its tags
_SENTENCE = re.compile(r"[^.!?。\n]+(?:[.!?。]+|\n|$)")
_WORD = re.compile(r"\w+")


def merge_neighbours(hits: list[Hit]) -> list[Hit]:
    """Join hits whose chunks overlap or touch in the same file and page, at the better one's rank."""
    merged: list[Hit] = []
    for hit in hits:
        c = hit.chunk
        for i, kept in enumerate(merged):
            k = kept.chunk
            if (k.path, k.page) == (c.path, c.page) and c.start <= k.end and k.start <= c.end:
                first, second = (k, c) if k.start <= c.start else (c, k)
                text = first.text + second.text[first.end - second.start :] if second.end > first.end else first.text
                chunk = replace(k, start=first.start, end=max(first.end, second.end), text=text)
                merged[i] = replace(kept, chunk=chunk)
                break
        else:
            merged.append(hit)
    return merged


def estimate_tokens(text: str) -> int:
    """Upper-bound token estimate that needs no tokenizer: byte-level BPE vocabularies without
    Korean merges spend about two tokens per Hangul syllable, and about one per four Latin chars."""
    hangul = len(HANGUL.findall(text))
    return 2 * hangul + (len(text) - hangul) // 3 + 1


def _terms(text: str) -> set[str]:
    """Words, plus character bigrams of Hangul words (Korean particles glue onto their nouns)."""
    words = {w.lower() for w in _WORD.findall(text)}
    bigrams = {w[i : i + 2] for w in words if HANGUL.search(w) for i in range(len(w) - 1)}
    return words | bigrams


def best_sentences(text: str, question: str, budget: int, count: Callable[[str], int]) -> str:
    """The sentences of `text` sharing most terms with `question` that fit `budget`, in text order."""
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    wanted = _terms(question)
    order = sorted(range(len(sentences)), key=lambda i: (-len(_terms(sentences[i]) & wanted), i))
    kept, used = set(), 0
    for i in order:
        cost = count(sentences[i]) + 1
        if used + cost <= budget:
            kept.add(i)
            used += cost
    return " … ".join(sentences[i] for i in sorted(kept))


def fit_context(
    hits: list[Hit], budget: int, question: str = "", count: Callable[[str], int] = estimate_tokens
) -> tuple[list[Hit], int]:
    """The best-ranked hits within `budget` tokens; returns them and how many were trimmed.

    The first passage always goes in (trimmed if need be); later ones go whole, trimmed to fit
    what is left, or not at all once the rest is under MIN_TRIMMED tokens."""
    kept: list[Hit] = []
    trimmed, left = 0, budget
    for hit in hits:
        cost = count(hit.chunk.text) + OVERHEAD
        if cost <= left:
            kept.append(hit)
            left -= cost
            continue
        room = left - OVERHEAD
        if room < MIN_TRIMMED and kept:
            break
        text = best_sentences(hit.chunk.text, question, max(room, MIN_TRIMMED), count)
        if not text:
            break
        kept.append(replace(hit, chunk=replace(hit.chunk, text=text)))
        trimmed += 1
        left -= count(text) + OVERHEAD
        if left < MIN_TRIMMED + OVERHEAD:
            break
    return kept, trimmed

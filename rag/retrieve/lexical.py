"""Tokens for BM25, by script: Korean morphemes from Kiwi, English stems, numbers as they are.

Korean is agglutinative: 뉴진스는, 뉴진스의 and 뉴진스가 are one word with different particles, so
whitespace tokens never match. Kiwi splits them into morphemes; we keep content morphemes (nouns,
verb and adjective stems, roots, adverbs, numbers, foreign words) and drop particles, endings and
suffixes by their tags. Latin words (alone or inside Korean text) are lower-cased, stop-worded
and Snowball-stemmed. Used identically for documents (at ingest) and queries.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rag.hangul import HANGUL, kiwi

_WORD = re.compile(r"\w+")
_KEEP = {"NNG", "NNP", "NR", "XR", "VV", "VA", "VV-R", "VV-I", "VA-R", "VA-I", "MAG", "SL", "SH", "SN", "W_HASHTAG"}

# English stop words (bm25s' list, extended with question words that carry no topic)
_STOP_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with what which who whom whose when where why how does did "
    "do i me my we our you your he him his she her its am been being have has had were can could "
    "would should"
)
_STOP = frozenset(_STOP_WORDS.split())


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _latin(words: list[str]) -> list[str]:
    kept = [w.lower() for w in words]
    kept = [w for w in kept if w not in _STOP]
    return _stemmer().stemWords(kept)


def _kept(morphemes) -> list[str]:
    tokens: list[str] = []
    for token in morphemes:
        if token.tag not in _KEEP:
            continue
        if token.tag == "SL":
            tokens += _latin(_WORD.findall(token.form))
        else:
            tokens.append(token.form.lower())
    return tokens


def tokenize(text: str) -> list[str]:
    """BM25 tokens of one text."""
    if not HANGUL.search(text):
        return _latin(_WORD.findall(text))
    return _kept(kiwi().tokenize(text))


def tokenize_many(texts: list[str]) -> list[list[str]]:
    """BM25 tokens of many texts, the same as `tokenize` on each; Kiwi analyses them on every core."""
    korean = [i for i, text in enumerate(texts) if HANGUL.search(text)]
    hangul = set(korean)
    out = [[] if i in hangul else _latin(_WORD.findall(text)) for i, text in enumerate(texts)]
    for i, morphemes in zip(korean, kiwi().tokenize([texts[i] for i in korean]), strict=True):
        out[i] = _kept(morphemes)
    return out

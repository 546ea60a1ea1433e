"""The Hangul syllable pattern and the one Kiwi analyser: Korean text takes other paths than English
(sentence splitter, tokenizer, prompt language, answer metric, padding budget), and every one of them
asks the same question."""

from __future__ import annotations

import re
from functools import lru_cache

HANGUL = re.compile(r"[\uac00-\ud7a3]")


@lru_cache(maxsize=1)
def kiwi():
    """The process's Kiwi, shared by the sentence splitter and the BM25 tokenizer (it takes ~1 s and
    ~100 MB to load). One text runs on the calling thread; a list is spread over all cores."""
    from kiwipiepy import Kiwi

    return Kiwi(num_workers=-1)

"""Give an English WordPiece vocabulary whole Hangul syllables.

all-MiniLM-L6-v2's uncased tokenizer decomposes Hangul into jamo (NFD) and lacks some jamo, so a
syllable costs 2-3 tokens and whole words become [UNK]. We add the most frequent syllables of the
training text as tokens matched before normalisation (one token per syllable, never [UNK]) and
initialise each new embedding with the mean of the embeddings of the pieces it used to split into,
so training starts from what the model already knew, plus noise at the scale of the base
embeddings: syllables sharing jamo (가, 각, 갈) would otherwise start as near-identical vectors,
and a cross-encoder cannot learn exact-match signals between tokens it cannot tell apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rag.hangul import HANGUL


def frequent_syllables(texts: Iterable[str], top: int) -> list[str]:
    counts = Counter(ch for text in texts for ch in HANGUL.findall(text))
    return [ch for ch, _ in counts.most_common(top)]


def common_syllables() -> list[str]:
    """The 2,350 syllables of KS X 1001 (every Hangul syllable EUC-KR can encode): the ones in real use."""
    out = []
    for lead in range(0xB0, 0xC9):
        for trail in range(0xA1, 0xFF):
            try:
                out.append(bytes([lead, trail]).decode("euc-kr"))
            except UnicodeDecodeError:
                continue
    return [ch for ch in out if HANGUL.fullmatch(ch)]


def tokenizer_stats(tokenizer, texts: list[str]) -> dict[str, float]:
    """Tokens per character and the share of [UNK] tokens (what the vocabulary fix is for)."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    tokens = sum(len(i) for i in ids)
    unknown = sum(i.count(tokenizer.unk_token_id) for i in ids)
    return {"tokens_per_char": tokens / max(1, sum(len(t) for t in texts)), "unk_rate": unknown / max(1, tokens)}


def reads_hangul(tokenizer) -> bool:
    """True when the vocabulary already holds Korean (no [UNK], under a token per character).

    XLM-R's pieces (multilingual-e5-small) or a model that already got its syllables need none added.
    """
    stats = tokenizer_stats(tokenizer, ["대한민국의 수도는 서울이고, 뉴진스는 2022년에 데뷔했다."])
    return stats["unk_rate"] == 0 and stats["tokens_per_char"] <= 1.0


def add_syllables(model, tokenizer, syllables: list[str], seed: int = 13) -> int:
    """Add `syllables` to tokenizer and model; returns how many were new."""
    import torch
    from tokenizers import AddedToken

    embeddings = model.get_input_embeddings().weight
    unk = tokenizer.unk_token_id
    new = [s for s in syllables if s not in tokenizer.get_vocab()]
    inits = []
    for syllable in new:
        pieces = [i for i in tokenizer(syllable, add_special_tokens=False)["input_ids"] if i != unk]
        inits.append(embeddings[pieces].mean(0) if pieces else embeddings[unk])
    tokenizer.add_tokens([AddedToken(s, normalized=False) for s in new])
    model.resize_token_embeddings(len(tokenizer))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        scale = embeddings.std(dim=0)
        weight = model.get_input_embeddings().weight
        for syllable, init in zip(new, inits, strict=True):
            noise = torch.randn(init.shape, generator=generator) * scale
            weight[tokenizer.convert_tokens_to_ids(syllable)] = init + noise
    return len(new)

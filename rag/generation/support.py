"""Is each answer sentence backed by the passage it cites?

A small model invents numbers most of all (a price, a date, a count: issue 29's warm server made up
three such answers). So every sentence of the answer is checked against the passages it cites
([n]; a sentence citing none against all of them): each number in it (digits, "1,000" as "1000",
"20:00" as 20 and 00, "만 4~7세" as 4 and 7) must appear in them, as digits or as a native number
word before a counter ("일곱 권" holds 7; "seven" holds 7). A sentence with a number none of its
passages holds is `supported: false` and lists what is missing. With the retriever's embedder, each
sentence also gets `support`, its best cosine to a sentence of those passages, reported for a
threshold still to be fitted on labelled answers (it flags nothing yet).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from rag.generation.context import Scorer, split_sentences
from rag.retrieve.hits import Hit

_CITED = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_LEADING = re.compile(r"(\s*\[\d+(?:\s*,\s*\d+)*\])*[\s.]*")
_NUMBER = re.compile(r"\d[\d,]*")
_COUNTERS = "권|명|번|개|시간|살|곳|대|장|차례|가지|달|주|일|층|칸|회"
_KOREAN = {"한": 1, "두": 2, "세": 3, "네": 4, "다섯": 5, "여섯": 6, "일곱": 7, "여덟": 8, "아홉": 9, "열": 10}
_ENGLISH = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
_KOREAN_WORD = re.compile(rf"(?<![가-힣])({'|'.join(_KOREAN)})\s*(?={_COUNTERS})")
_ENGLISH_WORD = re.compile(rf"\b({'|'.join(_ENGLISH)})\b", re.IGNORECASE)


@dataclass
class SentenceCheck:
    sentence: str
    cited: list[int]  # 1-based passages it cites; empty: checked against all
    missing: list[str]  # its numbers none of those passages holds
    support: float | None  # best embedder cosine to a sentence of those passages
    supported: bool

    def as_dict(self) -> dict:
        return asdict(self)


def numbers(text: str) -> set[str]:
    """The numbers written in digits, commas dropped ("1,000" -> "1000")."""
    return {n.replace(",", "").lstrip("0") or "0" for n in _NUMBER.findall(text) if n.strip(",")}


def claimed_numbers(sentence: str) -> set[str]:
    """The numbers a sentence states, its citations ([2]) not counted."""
    return numbers(_CITED.sub("", sentence))


def held_numbers(text: str) -> set[str]:
    """The numbers a passage holds: its digits and its number words before a counter."""
    words = {str(_KOREAN[w]) for w in _KOREAN_WORD.findall(text)}
    words |= {str(_ENGLISH.index(w.lower()) + 1) for w in _ENGLISH_WORD.findall(text)}
    return numbers(text) | words


def answer_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of an answer with the passages each cites; citations standing after a sentence's
    period ("… 합니다. [1] 다음 문장") belong to that sentence."""
    out: list[tuple[str, list[int]]] = []
    for start, end in split_sentences(text):
        sentence = text[start:end].strip()
        lead = _LEADING.match(sentence).group()
        if lead and out:  # citations that close the sentence before
            previous, cited = out[-1]
            out[-1] = (f"{previous} {lead.strip()}", cited + [n for n in _numbers_cited(lead) if n not in cited])
            sentence = sentence[len(lead) :].strip()
        if _CITED.sub("", sentence).strip(" ."):
            out.append((sentence, _numbers_cited(sentence)))
    return out


def _numbers_cited(text: str) -> list[int]:
    return list(dict.fromkeys(int(n) for group in _CITED.findall(text) for n in group.split(",")))


def check_answer(text: str, passages: list[Hit], scorer: Scorer | None = None) -> list[SentenceCheck]:
    checks = []
    for sentence, cited in answer_sentences(text):
        given = [passages[n - 1] for n in cited if 0 < n <= len(passages)] or passages
        source = " ".join(hit.chunk.text for hit in given)
        claim = _CITED.sub("", sentence)
        missing = sorted(claimed_numbers(sentence) - held_numbers(source), key=lambda n: (len(n), n))
        support = None
        if scorer is not None and source.strip():
            spans = [source[s:e] for s, e in split_sentences(source)]
            support = round(float(max(scorer(claim, spans))), 3) if spans else None
        checks.append(SentenceCheck(sentence, cited, missing, support, not missing))
    return checks

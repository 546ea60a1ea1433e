"""Generate one answer from ranked passages and check it as it streams."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rag.generation import guard
from rag.generation.budget import estimate_tokens, fit_context, merge_neighbours
from rag.generation.citations import CitationFilter
from rag.generation.context import CONTEXT_VERSION, FLOOR, Scorer, lexical_scorer, select_context
from rag.generation.decline import DeclineFilter
from rag.generation.prompt import EXAMPLE_ANSWER, PROMPT_VERSION, build_messages, language
from rag.generation.repetition import RepetitionGuard
from rag.generation.support import SentenceCheck, check_answer, claimed_numbers, held_numbers
from rag.llm import ChatLLM, LLMError
from rag.retrieve.hits import Hit
from rag.settings import Settings


@dataclass
class Generated:
    """An answer and what happened on the way: the passages it read, checks, timings."""

    text: str
    passages: list[Hit]
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    removed_citations: list[int] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)  # 1-based passages the answer cites, in order
    flagged: list[int] = field(default_factory=list)  # 1-based passages that address the assistant
    repetition_stopped: bool = False
    abstained: bool = False  # the answer says the passages do not hold it
    checks: list[SentenceCheck] = field(default_factory=list)  # each sentence against what it cites
    first_token_ms: float | None = None
    generate_ms: float = 0.0
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, as the engine counted them


def fingerprint(settings: Settings, model: str, engine: str = "llamacpp") -> str:
    """What, besides the question and its passages, decides an answer: cache keys include it
    (engines convert and compute the same weights differently, so they answer differently)."""
    parts = {
        "prompt": PROMPT_VERSION,
        "model": model,
        **({} if engine == "llamacpp" else {"engine": engine}),
        "top_n": settings.top_n,
        "context_tokens": settings.llm_context_tokens,
        **({} if settings.context == "passages" else {"context": f"{settings.context}-v{CONTEXT_VERSION}"}),
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
        "defences": sorted(guard.parse_defences(settings.injection_defences)),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _unsupported(examples: list[str], passages: list[Hit]) -> list[str]:
    """The worked examples' answers whose numbers the passages do not hold: a copy of one of those
    is no answer (a copy the passages support, "1,000원" over docs_corpus's lost-card policy, is)."""
    held = held_numbers(" ".join(hit.chunk.text for hit in passages))
    return [example for example in examples if not claimed_numbers(example) <= held]


def _counter(llm: ChatLLM) -> Callable[[str], int]:
    return llm.count_tokens if llm.can_tokenize else estimate_tokens


def choose_context(
    llm: ChatLLM, settings: Settings, question: str, ranked: list[Hit], scorer: Scorer | None = None
) -> tuple[list[Hit], list[str]]:
    """The passages the LLM reads, and warnings: `RAG_CONTEXT=sentences` picks sentences within
    the budget (rag.generation.context); `passages` gives whole passages, trimmed to fit."""
    given = merge_neighbours(ranked[: settings.top_n])
    budget = settings.llm_context_tokens
    if settings.context == "sentences":
        # FLOOR is in embedder-cosine units; shares of shared words (the fallback) have no floor
        floor = FLOOR if scorer else None
        return select_context(given, question, budget, _counter(llm), scorer or lexical_scorer, floor), []
    passages, trimmed = fit_context(given, budget, question, _counter(llm))
    dropped = len(given) - len(passages)
    if not (trimmed or dropped):
        return passages, []
    return passages, [
        f"{trimmed} passage(s) trimmed to their best sentences, {dropped} left out, to fit the LLM "
        f"context budget (RAG_LLM_CONTEXT_TOKENS={budget})"
    ]


def generate_answer(
    llm: ChatLLM,
    settings: Settings,
    question: str,
    ranked: list[Hit],
    on_token: Callable[[str], None] | None = None,
    scorer: Scorer | None = None,
) -> Generated:
    """Answer `question` from the best `ranked` passages; LLM failures land in `.error`.

    The streamed text passes the repetition guard, the citation check, then the decline filter (a
    decline in the question's language), so what `on_token` shows is exactly the final `.text`.
    `scorer` rates sentences against the question (the retriever's embedder,
    `rag.generation.context.embedding_scorer`); shared words without it."""
    defences = guard.parse_defences(settings.injection_defences)
    started = time.perf_counter()
    try:
        passages, warnings = choose_context(llm, settings, question, ranked, scorer)
    except LLMError as exc:
        return Generated(text="", passages=ranked[: settings.top_n], error=str(exc))
    out = Generated(text="", passages=passages, warnings=warnings)
    if "flag" in defences:
        out.flagged = [n for n, hit in enumerate(passages, 1) if guard.addresses_assistant(hit.chunk.text)]
    repetition, citations, decline = (
        RepetitionGuard(),
        CitationFilter(len(passages)),
        DeclineFilter(language(question), copied=_unsupported([EXAMPLE_ANSWER], passages)),
    )
    parts: list[str] = []

    def emit(text: str) -> None:
        if text:
            parts.append(text)
            if on_token:
                on_token(text)

    stream = llm.stream(
        build_messages(question, passages, defences), usage=out.usage, max_tokens=settings.llm_max_tokens
    )
    try:
        for piece in stream:
            if out.first_token_ms is None:
                out.first_token_ms = (time.perf_counter() - started) * 1000
            emit(decline.feed(citations.feed(repetition.feed(piece))))
            if repetition.stopped:
                break
        emit(decline.feed(citations.feed(repetition.finish()) + citations.finish()) + decline.finish())
    except LLMError as exc:
        out.error = str(exc)
    finally:
        stream.close()
    out.text = "".join(parts).strip()
    out.removed_citations = citations.removed
    out.cited = citations.cited
    out.repetition_stopped = repetition.stopped
    out.abstained = decline.declined
    out.checks = [] if out.abstained else check_answer(out.text, passages, scorer)
    if repetition.stopped:
        out.warnings.append("the model began repeating itself: the answer was cut there")
    if citations.removed:
        out.warnings.append(
            f"removed citation(s) {', '.join(f'[{n}]' for n in citations.removed)}: "
            f"only {len(passages)} passage(s) were given"
        )
    out.generate_ms = (time.perf_counter() - started) * 1000
    return out

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
from rag.generation.prompt import PROMPT_VERSION, build_messages
from rag.generation.repetition import RepetitionGuard
from rag.hits import Hit
from rag.llm import LLM, LLMError
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
    first_token_ms: float | None = None
    generate_ms: float = 0.0


def fingerprint(settings: Settings, model: str) -> str:
    """What, besides the question and its passages, decides an answer: cache keys include it."""
    parts = {
        "prompt": PROMPT_VERSION,
        "model": model,
        "top_n": settings.top_n,
        "context_tokens": settings.llm_context_tokens,
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
        "defences": sorted(guard.parse_defences(settings.injection_defences)),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _counter(llm: LLM) -> Callable[[str], int]:
    return llm.count_tokens if llm.can_tokenize else estimate_tokens


def generate_answer(
    llm: LLM, settings: Settings, question: str, ranked: list[Hit], on_token: Callable[[str], None] | None = None
) -> Generated:
    """Answer `question` from the best `ranked` passages; LLM failures land in `.error`.

    The streamed text passes the repetition guard, then the citation check, so what `on_token`
    shows is exactly the final `.text`."""
    defences = guard.parse_defences(settings.injection_defences)
    started = time.perf_counter()
    given = merge_neighbours(ranked[: settings.top_n])
    try:
        passages, trimmed = fit_context(given, settings.llm_context_tokens, question, _counter(llm))
    except LLMError as exc:
        return Generated(text="", passages=given, error=str(exc))
    out = Generated(text="", passages=passages)
    dropped = len(given) - len(passages)
    if trimmed or dropped:
        out.warnings.append(
            f"{trimmed} passage(s) trimmed to their best sentences, {dropped} left out, to fit the LLM "
            f"context budget (RAG_LLM_CONTEXT_TOKENS={settings.llm_context_tokens})"
        )
    if "flag" in defences:
        out.flagged = [n for n, hit in enumerate(passages, 1) if guard.addresses_assistant(hit.chunk.text)]
    repetition, citations = RepetitionGuard(), CitationFilter(len(passages))
    parts: list[str] = []

    def emit(text: str) -> None:
        if text:
            parts.append(text)
            if on_token:
                on_token(text)

    stream = llm.stream(build_messages(question, passages, defences))
    try:
        for piece in stream:
            if out.first_token_ms is None:
                out.first_token_ms = (time.perf_counter() - started) * 1000
            emit(citations.feed(repetition.feed(piece)))
            if repetition.stopped:
                break
        emit(citations.feed(repetition.finish()) + citations.finish())
    except LLMError as exc:
        out.error = str(exc)
    finally:
        stream.close()
    out.text = "".join(parts).strip()
    out.removed_citations = citations.removed
    out.cited = citations.cited
    out.repetition_stopped = repetition.stopped
    if repetition.stopped:
        out.warnings.append("the model began repeating itself: the answer was cut there")
    if citations.removed:
        out.warnings.append(
            f"removed citation(s) {', '.join(f'[{n}]' for n in citations.removed)}: "
            f"only {len(passages)} passage(s) were given"
        )
    out.generate_ms = (time.perf_counter() - started) * 1000
    return out

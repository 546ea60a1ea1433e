"""retrieve → rerank → generate, with the models loaded once and reused across questions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rag.errors import RagError
from rag.generation import generate_answer
from rag.generation.context import Scorer, embedding_scorer
from rag.generation.followup import Turn, retrieval_queries
from rag.generation.guard import parse_defences
from rag.generation.prompt import build_messages
from rag.llm import ChatLLM, LLMError, open_llm
from rag.models.embedder import legacy_note
from rag.rerank.reranker import Reranker, RerankerUnavailable, reranker_from
from rag.retrieve.fusion import reciprocal_rank
from rag.retrieve.hits import Hit
from rag.retrieve.retrievers import open_retriever
from rag.settings import Settings
from rag.store import open_store


@dataclass
class Answer:
    question: str
    sources: list[Hit]
    answer: str = ""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    models: dict[str, str | None] = field(default_factory=dict)
    flagged: list[int] = field(default_factory=list)  # 1-based sources that address the assistant
    removed_citations: list[int] = field(default_factory=list)  # [n] the answer cited that do not exist
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens of the LLM call
    abstained: bool = False  # the answer says the passages do not hold it; the sources are the nearest
    retrieval_queries: list[str] = field(default_factory=list)  # a follow-up's (rag.generation.followup)
    checks: list = field(default_factory=list)  # rag.generation.support.SentenceCheck per answer sentence

    def as_dict(self) -> dict:
        """The JSON both `rag ask --json` and `rag serve` give: the answer, its sources and scores."""
        return {
            "question": self.question,
            "retrieval_queries": self.retrieval_queries,
            "answer": self.answer,
            "error": self.error,
            "warnings": self.warnings,
            "sources": hits_as_dicts(self.sources),
            "flagged": self.flagged,
            "removed_citations": self.removed_citations,
            "timings_ms": self.timings_ms,
            "models": self.models,
            "usage": self.usage,
            "abstained": self.abstained,
            "sentence_checks": [check.as_dict() for check in self.checks],
        }


@dataclass
class Search:
    """Passages for a query, with no answer written."""

    query: str
    hits: list[Hit]
    timings_ms: dict[str, float]
    models: dict
    warnings: list[str]

    def as_dict(self) -> dict:
        return {
            "query": self.query,
            "hits": hits_as_dicts(self.hits),
            "timings_ms": self.timings_ms,
            "models": self.models,
            "warnings": self.warnings,
        }


def hits_as_dicts(hits: list[Hit]) -> list[dict]:
    return [
        {
            "rank": rank,
            "source": hit.source,
            "title": hit.chunk.title,
            "page": hit.chunk.page,
            "ocr": hit.chunk.ocr,
            "chunk_id": hit.chunk.id,
            "start": hit.chunk.start,
            "end": hit.chunk.end,
            "text": hit.chunk.text,
            "retrieval_rank": hit.retrieval_rank,
            "retrieval_score": hit.retrieval_score,
            "rerank_score": hit.rerank_score,
            "rerank_sigmoid": hit.rerank_prob,
            "rerank_relative": hit.rerank_relative,
            "final_score": hit.final_score,
        }
        for rank, hit in enumerate(hits, 1)
    ]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


class Pipeline:
    """The models, loaded once. `log` receives one line per thing loaded, with its time (`rag ask`
    prints them on stderr: a user waiting for a cold start sees what it waits for)."""

    def __init__(self, settings: Settings, log: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.log = log or (lambda line: None)
        started = time.perf_counter()
        parse_defences(settings.injection_defences)  # a bad setting fails before any model loads
        self._explicit_embedder = settings.embedder if "embedder" in settings.model_fields_set else None
        self.store = open_store(settings)
        self.generation = self.store.generation()
        self.retriever = open_retriever(settings.retriever, self.store, self._explicit_embedder)
        embedder = getattr(self.retriever, "embedder", None)
        self.log(
            f"index and {self.retriever.name} retriever"
            + (f" ({embedder.model_id})" if embedder is not None else "")
            + f" loaded in {time.perf_counter() - started:.1f} s"
        )
        self.index_note = (
            None
            if self._explicit_embedder or settings.retriever == "bm25"
            else legacy_note(self.retriever.index.embedder_id)
        )
        self.reranker_warning: str | None = None
        self.reranker: Reranker | None = None
        started = time.perf_counter()
        try:
            self.reranker = reranker_from(settings)
        except RerankerUnavailable as exc:
            self.reranker_warning = f"{exc} — continuing without rerank"
        if self.reranker is not None:
            self.log(f"reranker {self.reranker.model_id} loaded in {time.perf_counter() - started:.1f} s")
        self._llm: ChatLLM | None = None
        self._llm_lock = threading.Lock()
        self._llm_error: LLMError | None = None

    def refresh(self) -> bool:
        """Reopen the index when an ingest committed a new generation since it was opened (`rag
        serve` asks before each question: answers come from the old generation until the switch)."""
        live = self.store.generation()
        if live is None or live == self.generation:
            return False
        retriever = open_retriever(self.settings.retriever, self.store, self._explicit_embedder)
        self.retriever, self.generation = retriever, live
        self.warm()
        return True

    def warm(self) -> None:
        """Load what loads lazily (the local store's BM25 arrays) now, while the generation exists: a
        later commit deletes it."""
        self.retriever.retrieve("warm-up", 1)

    @property
    def scorer(self) -> Scorer | None:
        """Sentences of the context are rated with the retriever's embedder, already loaded."""
        embedder = getattr(self.retriever, "embedder", None)
        return embedding_scorer(embedder) if embedder is not None else None

    @property
    def llm(self) -> ChatLLM:
        """The LLM, loaded on first use (or by `prefetch_llm`); one load even when two threads ask."""
        with self._llm_lock:
            if self._llm is None:
                started = time.perf_counter()
                self._llm = open_llm(self.settings)
                self.log(f"LLM {self._llm.model} on {self._llm.engine} loaded in {time.perf_counter() - started:.1f} s")
            return self._llm

    def warm_llm(self) -> None:
        """Load the LLM and write one token: a fresh engine's first generation pays a one-off
        set-up (OpenVINO compiles its kernels: ~4 s here), and the fixed system prompt enters the
        local server's prompt cache. `rag serve` and `rag chat` do this before the first question."""
        try:
            llm = self.llm
            started = time.perf_counter()
            messages = build_messages("warm-up", [], parse_defences(self.settings.injection_defences))
            for _ in llm.stream(messages, max_tokens=1):
                pass
            self.log(f"LLM warmed up in {time.perf_counter() - started:.1f} s")
        except LLMError as exc:  # the first question will report it with its sources
            self.log(f"LLM not ready: {exc}")

    def prefetch_llm(self) -> threading.Thread:
        """Load and warm the LLM in the background while the question is retrieved (`rag ask`)."""
        thread = threading.Thread(target=self.warm_llm, name="llm-prefetch", daemon=True)
        thread.start()
        return thread

    def sources(self, queries: str | list[str], answer: Answer, top_n: int | None = None) -> list[Hit]:
        """The `top_n` best passages for a question (or a follow-up's queries, their lists fused):
        retrieved, then reranked for the first query when a reranker is set. Without one,
        `final_score` is the retrieval score, so a client always has one score to sort by."""
        started = time.perf_counter()
        queries = [queries] if isinstance(queries, str) else queries
        question, k = queries[0], self.settings.candidates
        lists = [self.retriever.retrieve(query, k) for query in queries]
        hits = lists[0] if len(lists) == 1 else reciprocal_rank(lists, k)
        answer.timings_ms["retrieve"] = _ms(started)
        started = time.perf_counter()
        top_n = top_n or self.settings.top_n
        if self.reranker is not None:
            hits = self.reranker.rerank(question, hits, top_n)
        else:
            hits = hits[:top_n]
            for hit in hits:
                hit.final_score = hit.retrieval_score
        answer.timings_ms["rerank"] = _ms(started)
        return hits

    def _models(self) -> dict:
        return {
            "retriever": self.retriever.name,
            "embedder": self.retriever.embedder.model_id if hasattr(self.retriever, "embedder") else None,
            "reranker": self.reranker.model_id if self.reranker else None,
        }

    def _warnings(self) -> list[str]:
        return [note for note in (self.reranker_warning, self.index_note) if note]

    def search(self, query: str, top_n: int | None = None) -> Search:
        """Retrieve and rerank with no LLM: `rag search` and `/v1/search`."""
        answer = Answer(question=query, sources=[])
        hits = self.sources(query, answer, top_n)
        return Search(query, hits, answer.timings_ms, self._models(), self._warnings())

    def ask(
        self,
        question: str,
        on_token: Callable[[str], None] | None = None,
        max_tokens: int | None = None,
        history: list[Turn] | None = None,
    ) -> Answer:
        """Answer `question`; after earlier `history` turns, retrieved with the last of them too. LLM
        failures are recorded in `answer.error`, sources are kept."""
        answer = Answer(question=question, sources=[], warnings=self._warnings())
        answer.retrieval_queries = retrieval_queries(history or [], question)
        ranked = self.sources(answer.retrieval_queries, answer)
        answer.models = self._models()
        if not ranked:
            raise RagError(f"no passage matched the question (retriever {self.retriever.name}); try --retriever hybrid")
        answer.sources = ranked
        try:
            llm = self.llm
        except LLMError as exc:
            answer.error = str(exc)
            return answer
        answer.models["llm"] = llm.model
        answer.models["llm_engine"] = llm.engine
        if llm.note:
            answer.warnings.append(llm.note)
        settings = self.settings
        if max_tokens is not None and max_tokens < settings.llm_max_tokens:  # a client's cap, never a raise
            settings = settings.model_copy(update={"llm_max_tokens": max(1, max_tokens)})
        generated = generate_answer(llm, settings, question, ranked, on_token, self.scorer)
        answer.sources = generated.passages
        answer.answer = generated.text
        answer.error = generated.error
        answer.warnings += generated.warnings
        answer.flagged = generated.flagged
        answer.removed_citations = generated.removed_citations
        answer.usage = generated.usage
        answer.abstained = generated.abstained
        answer.checks = generated.checks
        answer.timings_ms["generate"] = round(generated.generate_ms, 1)
        if generated.first_token_ms is not None:
            answer.timings_ms["first_token"] = round(generated.first_token_ms, 1)
        return answer

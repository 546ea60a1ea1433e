"""Run the rerank experiment: every retriever × reranker arm, at every candidate count.

Each retriever runs once per question at the largest candidate count; a smaller count is the
prefix of that list (exact for dense search). A reranker scores the candidates incrementally,
smallest count first, so one pass yields both the rankings and the rerank latency at every count.
`none` is the no-rerank baseline and is always an arm.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ingest.writer import IndexWriter, Progress
from rag.errors import RagError
from rag.eval import metrics as m
from rag.eval.datasets import EvalSet, Question
from rag.hits import Hit
from rag.llm import LLM, Endpoint, LLMError, open_llm
from rag.prompt import build_messages, fit_context
from rag.reranker import NO_RERANK, Reranker, reranker_from
from rag.retrieval import RETRIEVERS, open_retriever
from rag.settings import Settings
from rag.store import FORMAT_VERSION


@dataclass
class Run:
    retriever: str
    reranker: str
    candidates: int
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    generation: dict[str, float] | None = None


@dataclass
class Experiment:
    dataset: EvalSet
    settings: Settings
    retrievers: list[str]
    rerankers: list[str]
    candidates: list[int]
    generate: bool = False
    runs: list[Run] = field(default_factory=list)
    ingest_seconds: float = 0.0


def parse_arms(retrievers: list[str], rerankers: list[str]) -> tuple[list[str], list[str]]:
    """Flatten comma lists, validate retrievers, put the `none` baseline first."""
    flat_retrievers = list(dict.fromkeys(r.strip() for arg in retrievers for r in arg.split(",") if r.strip()))
    for name in flat_retrievers:
        if name not in RETRIEVERS:
            raise RagError(f"unknown retriever '{name}': choose from {', '.join(RETRIEVERS)}")
    flat_rerankers = [r.strip() for arg in rerankers for r in arg.split(",") if r.strip()]
    named = [r for r in dict.fromkeys(flat_rerankers) if r.lower() not in NO_RERANK]
    return flat_retrievers or ["hybrid"], ["none", *named]


def parse_candidates(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise RagError(f"--candidates '{text}': give comma-separated positive integers, e.g. 5,10,20") from None
    if not values or values[0] < 1:
        raise RagError(f"--candidates '{text}': give comma-separated positive integers, e.g. 5,10,20")
    return values


def prepare_index(dataset: EvalSet, settings: Settings, progress: Progress | None = None) -> Path:
    """Ingest the corpus through the normal ingest path into a cache keyed by corpus and settings."""
    key = f"v{FORMAT_VERSION}-{dataset.format}-{dataset.corpus_key()}-{settings.chunk_size}-{settings.chunk_overlap}"
    embedder = settings.embedder.replace("/", "_")
    index_dir = settings.eval_cache_dir / f"{key}-{embedder}"
    writer = IndexWriter(settings.model_copy(update={"index_dir": index_dir}), progress)
    report = writer.ingest([dataset.folder]) if dataset.folder else writer.ingest_records(dataset.records)
    if report.chunks_total == 0:
        raise RagError(f"dataset {dataset.name}: the corpus produced no chunks")
    return index_dir


def doc_id(hit: Hit, dataset: EvalSet) -> str:
    if dataset.folder is None:
        return hit.chunk.path
    return os.path.relpath(hit.chunk.path, dataset.folder).replace(os.sep, "/")


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class Evaluator:
    def __init__(self, experiment: Experiment, progress: Progress | None = None) -> None:
        self.x = experiment
        self.progress = progress or (lambda stage, done, total: None)
        self._llm: LLM | None = None
        self._judge: LLM | None = None

    def run(self) -> Experiment:
        started = time.perf_counter()
        index_dir = prepare_index(self.x.dataset, self.x.settings, self.progress)
        self.x.ingest_seconds = time.perf_counter() - started
        rerankers = {name: self._load_reranker(name) for name in self.x.rerankers}
        for retriever_name in self.x.retrievers:
            retriever = open_retriever(retriever_name, index_dir)
            candidates, retrieve_ms = self._retrieve(retriever, retriever_name)
            for reranker_name, reranker in rerankers.items():
                self._evaluate_arm(retriever_name, reranker_name, reranker, candidates, retrieve_ms)
        return self.x

    def _load_reranker(self, name: str) -> Reranker | None:
        return reranker_from(self.x.settings, name)

    def _retrieve(self, retriever, name: str) -> tuple[list[list[Hit]], list[float]]:
        questions = self.x.dataset.questions
        depth = max(self.x.candidates)
        results, latency = [], []
        for n, question in enumerate(questions, 1):
            started = time.perf_counter()
            results.append(retriever.retrieve(question.question, depth))
            latency.append(_ms(started))
            self.progress(f"retrieve {name}", n, len(questions))
        return results, latency

    def _rerank_incrementally(self, reranker: Reranker, question: str, hits: list[Hit]) -> list[float]:
        """Score hits in slices ending at each candidate count; returns cumulative ms per count."""
        cumulative, spent, done = [], 0.0, 0
        for count in self.x.candidates:
            started = time.perf_counter()
            fresh = hits[done:count]
            for hit, score in zip(fresh, reranker.score(question, [h.chunk.text for h in fresh])):
                hit.rerank_score = float(score)
            spent += _ms(started)
            done = max(done, min(count, len(hits)))
            cumulative.append(spent)
        return cumulative

    def _evaluate_arm(
        self,
        retriever_name: str,
        reranker_name: str,
        reranker: Reranker | None,
        candidates: list[list[Hit]],
        retrieve_ms: list[float],
    ) -> None:
        questions = self.x.dataset.questions
        counts = self.x.candidates
        per_count: dict[int, list[dict[str, float]]] = {c: [] for c in counts}
        rerank_ms: dict[int, list[float]] = {c: [] for c in counts}
        ranked_at: dict[int, list[list[Hit]]] = {c: [] for c in counts}
        for n, (question, hits) in enumerate(zip(questions, candidates), 1):
            hits = [Hit(h.chunk, h.retrieval_score, h.retrieval_rank) for h in hits]  # fresh scores per arm
            spent = self._rerank_incrementally(reranker, question.question, hits) if reranker else [0.0] * len(counts)
            for count, ms in zip(counts, spent):
                top = hits[:count]
                if reranker:
                    top = reranker.order(top)
                ranked_at[count].append(top)
                rerank_ms[count].append(ms)
                if question.gold_ids:
                    ranking = m.document_ranking(doc_id(h, self.x.dataset) for h in top)
                    per_count[count].append(m.retrieval_metrics(ranking, set(question.gold_ids), count))
            if reranker:
                self.progress(f"rerank {reranker_name}", n, len(questions))
        generate_at = self._generation_count()
        for count in counts:
            scored = per_count[count]
            metrics = {k: sum(row[k] for row in scored) / len(scored) for k in scored[0]} if scored else {}
            latency = {
                "retrieve_p50": m.percentile(retrieve_ms, 50),
                "retrieve_p95": m.percentile(retrieve_ms, 95),
                "rerank_p50": m.percentile(rerank_ms[count], 50),
                "rerank_p95": m.percentile(rerank_ms[count], 95),
            }
            run = Run(retriever_name, reranker_name, count, metrics, latency)
            if self.x.generate and count == generate_at:
                run.generation, generate_ms = self._generate(ranked_at[count], f"{retriever_name}+{reranker_name}")
                latency |= {
                    "generate_p50": m.percentile(generate_ms, 50),
                    "generate_p95": m.percentile(generate_ms, 95),
                }
            self.x.runs.append(run)

    def _generation_count(self) -> int:
        """Answers are generated at one candidate count: the configured one, or the nearest below."""
        below = [c for c in self.x.candidates if c <= self.x.settings.candidates]
        return max(below) if below else min(self.x.candidates)

    def _generate(self, ranked: list[list[Hit]], label: str) -> tuple[dict[str, float], list[float]]:
        s = self.x.settings
        if self._llm is None:
            self._llm = open_llm(s)
        em, f1, rouge, declined, judged, latency, failures = [], [], [], [], [], [], 0
        questions = self.x.dataset.questions
        for n, (question, hits) in enumerate(zip(questions, ranked), 1):
            context = fit_context(hits[: s.top_n], s.llm_context_tokens)
            started = time.perf_counter()
            try:
                answer = "".join(self._llm.stream(build_messages(question.question, context))).strip()
            except LLMError:
                answer, failures = "", failures + 1
            latency.append(_ms(started))
            if question.answerable and question.answers:
                em.append(m.exact_match(answer, question.answers))
                f1.append(m.f1_score(answer, question.answers))
                rouge.append(m.rouge_l(answer, question.answers))
                if self._judge_llm():
                    judged.append(self._judge_score(question, answer))
            elif not question.answerable:
                declined.append(float(m.declines(answer)))
            self.progress(f"generate {label}", n, len(questions))
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        out = {"exact_match": mean(em), "f1": mean(f1), "rouge_l": mean(rouge)}
        if declined:
            out["unanswerable_declined"] = mean(declined)
        if judged:
            out["judge_correct"] = mean(judged)
        out["answered"] = float(len(em))
        out["llm_failures"] = float(failures)
        return {k: v for k, v in out.items() if v is not None}, latency

    def _judge_llm(self) -> LLM | None:
        s = self.x.settings
        if self._judge is None and s.judge_base_url:
            endpoint = Endpoint(s.judge_base_url, s.judge_api_key or "none", s.judge_model or "gpt-4o-mini", False)
            self._judge = LLM(endpoint, s.model_copy(update={"llm_max_tokens": 4, "llm_temperature": 0.0}))
        return self._judge

    def _judge_score(self, question: Question, answer: str) -> float:
        prompt = (
            "Is the candidate answer correct given the reference answers? Reply with yes or no only.\n"
            f"Question: {question.question}\nReference answers: {' | '.join(question.answers)}\n"
            f"Candidate answer: {answer}"
        )
        try:
            verdict = "".join(self._judge.stream([{"role": "user", "content": prompt}]))
        except LLMError:
            return 0.0
        return float(verdict.strip().lower().startswith(("yes", "예", "네")))

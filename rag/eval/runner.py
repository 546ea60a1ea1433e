"""Run the rerank experiment: every retriever × reranker arm, at every candidate count.

Each retriever runs once per question at the largest candidate count; a smaller count is the
prefix of that list (exact for dense search). A reranker scores the candidates incrementally,
smallest count first, so one pass yields both the rankings and the rerank latency at every count.
`none` is the no-rerank baseline and is always an arm.

Scores are kept per question, so each rerank arm can be compared with its baseline question by
question (`rerank_deltas`: paired mean difference with a bootstrap interval). Generated answers go
through `rag.generation.generate_answer`, as `rag ask` does, and are cached on disk (`answer_cache`).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

from ingest.writer import IndexWriter, Progress
from rag.errors import RagError
from rag.eval import metrics as m
from rag.eval.answer_cache import AnswerCache, CachedAnswer, answer_key, cache_path, passages_of
from rag.eval.datasets import EvalSet, Question
from rag.eval.stats import Interval, paired_bootstrap
from rag.generation import fingerprint, generate_answer
from rag.generation.context import Scorer, embedding_scorer
from rag.llm import LLM, ChatLLM, Endpoint, LLMError, open_llm, planned_identity
from rag.models.embedder import backend_version, prefixes
from rag.rerank.reranker import NO_RERANK, Reranker, reranker_from
from rag.retrieve.hits import Hit
from rag.retrieve.retrievers import RETRIEVERS, open_retriever
from rag.settings import Settings
from rag.store import FORMAT_VERSION, Store, open_store

RETRIEVAL_DELTAS = ("hit@1", "mrr@10")
GENERATION_DELTAS = ("accuracy", "exact_match", "f1", "rouge_l", "unanswerable_declined", "judge_correct")


@dataclass
class Run:
    retriever: str
    reranker: str
    candidates: int
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    generation: dict[str, float] | None = None
    # one row per dataset question, in order: the scores compared across arms (RETRIEVAL_DELTAS and
    # GENERATION_DELTAS); a score a question cannot have (no gold document, no answer) is absent
    per_question: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Delta:
    """A rerank arm against its no-rerank baseline (same retriever and count), on one metric."""

    retriever: str
    reranker: str
    candidates: int
    metric: str
    baseline: float
    rerank: float
    difference: Interval


@dataclass
class Experiment:
    dataset: EvalSet
    settings: Settings
    retrievers: list[str]
    rerankers: list[str]
    candidates: list[int]
    generate: bool = False
    cached_only: bool = False  # answers come from the cache only: a missing one is an error, no LLM loads
    runs: list[Run] = field(default_factory=list)
    deltas: list[Delta] = field(default_factory=list)
    ingest_seconds: float = 0.0
    llm_model: str | None = None
    generation_fingerprint: str | None = None


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


def prepare_index(dataset: EvalSet, settings: Settings, progress: Progress | None = None) -> Store:
    """Ingest the corpus through the normal ingest path into a cache keyed by corpus and settings:
    a folder of the eval cache (local store, Milvus Lite), or a collection named after the key (a
    Milvus server at RAG_MILVUS_URI)."""
    key = f"v{FORMAT_VERSION}-{dataset.format}-{dataset.corpus_key()}-{settings.chunk_size}-{settings.chunk_overlap}"
    embedder = settings.embedder.replace("/", "_") + ("-prefixed" if any(prefixes(settings.embedder)) else "")
    backend = backend_version(settings.embed_backend)
    name = f"{key}-{embedder}-{backend}" + ("" if settings.store == "local" else f"-{settings.store}")
    collection = "rag_eval_" + hashlib.sha256(name.encode()).hexdigest()[:16]
    cached = settings.model_copy(update={"index_dir": settings.eval_cache_dir / name, "milvus_collection": collection})
    store = open_store(cached)
    writer = IndexWriter(cached, progress, store)
    report = writer.ingest([dataset.folder]) if dataset.folder else writer.ingest_records(dataset.records)
    if report.chunks_total == 0:
        raise RagError(f"dataset {dataset.name}: the corpus produced no chunks")
    return store


def doc_id(hit: Hit, dataset: EvalSet) -> str:
    if dataset.folder is None:
        return hit.chunk.path
    return os.path.relpath(hit.chunk.path, dataset.folder).replace(os.sep, "/")


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def rerank_deltas(runs: list[Run]) -> list[Delta]:
    """Each rerank run against the `none` run with the same retriever and count, metric by metric.

    Only questions scored in both runs are paired (the same ones: both see the same questions).
    """
    baselines = {(r.retriever, r.candidates): r for r in runs if r.reranker == "none"}
    deltas = []
    for run in runs:
        base = baselines.get((run.retriever, run.candidates))
        if run.reranker == "none" or base is None:
            continue
        for metric in RETRIEVAL_DELTAS + GENERATION_DELTAS:
            rows = zip(run.per_question, base.per_question)
            pairs = [(r[metric], b[metric]) for r, b in rows if metric in r and metric in b]
            if not pairs:
                continue
            treated, baseline = (list(side) for side in zip(*pairs))
            interval = paired_bootstrap(treated, baseline)
            deltas.append(
                Delta(run.retriever, run.reranker, run.candidates, metric, _mean(baseline), _mean(treated), interval)
            )
    return deltas


class Evaluator:
    def __init__(self, experiment: Experiment, progress: Progress | None = None) -> None:
        self.x = experiment
        self.progress = progress or (lambda stage, done, total: None)
        self._llm: ChatLLM | None = None
        self._judge: LLM | None = None
        self._cache: AnswerCache | None = None
        self._scorer: Scorer | None = None  # rates context sentences: the retriever's embedder

    def run(self) -> Experiment:
        started = time.perf_counter()
        store = prepare_index(self.x.dataset, self.x.settings, self.progress)
        self.x.ingest_seconds = time.perf_counter() - started
        rerankers = {name: self._load_reranker(name) for name in self.x.rerankers}
        for retriever_name in self.x.retrievers:
            retriever = open_retriever(retriever_name, store)
            embedder = getattr(retriever, "embedder", None)
            self._scorer = embedding_scorer(embedder) if embedder is not None else None
            candidates, retrieve_ms = self._retrieve(retriever, retriever_name)
            for reranker_name, reranker in rerankers.items():
                self._evaluate_arm(retriever_name, reranker_name, reranker, candidates, retrieve_ms)
        self.x.deltas = rerank_deltas(self.x.runs)
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
        per_question: dict[int, list[dict[str, float]]] = {c: [] for c in counts}
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
                row: dict[str, float] = {}
                if question.gold_ids:
                    ranking = m.document_ranking(doc_id(h, self.x.dataset) for h in top)
                    gold = set(question.gold_ids)
                    per_count[count].append(m.retrieval_metrics(ranking, gold, count))
                    # mrr@10 over `count` candidates: equal to mrr@count when count < 10, so arms always compare
                    row = {"hit@1": m.hit_at(ranking, gold, 1), "mrr@10": m.mrr_at(ranking, gold, 10)}
                per_question[count].append(row)
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
            run = Run(retriever_name, reranker_name, count, metrics, latency, per_question=per_question[count])
            if self.x.generate and count == generate_at:
                run.generation, scores, timing = self._generate(ranked_at[count], retriever_name, reranker_name, count)
                for row, answer_scores in zip(run.per_question, scores):
                    row.update(answer_scores)
                latency |= timing
            self.x.runs.append(run)

    def _generation_count(self) -> int:
        """Answers are generated at one candidate count: the configured one, or the nearest below."""
        below = [c for c in self.x.candidates if c <= self.x.settings.candidates]
        return max(below) if below else min(self.x.candidates)

    def _llm_client(self) -> ChatLLM:
        """Opened on first use (the local LLM starts a server); it names the model and engine."""
        if self._llm is None:
            self._llm = open_llm(self.x.settings)
            self._identify(self._llm.model, self._llm.engine)
        return self._llm

    def _identify(self, model: str, engine: str) -> None:
        self.x.llm_model = model
        self.x.generation_fingerprint = fingerprint(self.x.settings, model, engine)

    def _answer_cache(self) -> AnswerCache:
        if self._cache is None:
            d, s = self.x.dataset, self.x.settings
            corpus = f"{d.format}-{d.corpus_key()}"
            folder = s.eval_answers_dir or s.eval_cache_dir / "answers"
            self._cache = AnswerCache(cache_path(folder, d.name, corpus))
        return self._cache

    def _cached(self, arm: str, passages: list[list[Hit]]) -> tuple[list[str], list[CachedAnswer | None]]:
        """Each question's cache key and cached answer under the current generation fingerprint."""
        fp = self.x.generation_fingerprint or ""
        keys = [answer_key(q.question, arm, passages_of(top), fp) for q, top in zip(self.x.dataset.questions, passages)]
        return keys, [self._answer_cache().get(key) for key in keys]

    def _generate(
        self, ranked: list[list[Hit]], retriever_name: str, reranker_name: str, count: int
    ) -> tuple[dict[str, float], list[dict[str, float]], dict[str, float]]:
        """Answer every question from the arm's top_n passages, reusing cached answers.

        The LLM is opened only when an answer is missing, so a run whose answers are all cached
        (`make experiment` on a fresh clone) rebuilds its report without loading a model.
        Returns the mean scores (with answered / cached / llm_failures counts), each question's
        scores, and the generation latency. A failed answer is scored as empty and not cached, so a
        later run asks again.
        """
        s = self.x.settings
        questions = self.x.dataset.questions
        label, arm = f"{retriever_name}+{reranker_name}", f"{retriever_name}+{reranker_name}@{count}"
        passages = [hits[: s.top_n] for hits in ranked]
        if self.x.generation_fingerprint is None and (planned := planned_identity(s)):
            self._identify(*planned)
        keys, answers = self._cached(arm, passages)
        llm = self._llm
        if self.x.cached_only and (missing := sum(a is None for a in answers)):
            raise RagError(
                f"{missing} of {len(answers)} answers for {label} are not in {self._answer_cache().path}: "
                "run without the cached-only option to generate them"
            )
        if self.x.generation_fingerprint is None or None in answers:
            before = self.x.generation_fingerprint
            llm = self._llm_client()
            if self.x.generation_fingerprint != before:  # a fallback engine, or a model only the endpoint named
                keys, answers = self._cached(arm, passages)
        reused = done = sum(a is not None for a in answers)
        failures = 0
        self.progress(f"generate {label}", done, len(questions))
        for i, (question, key) in enumerate(zip(questions, keys)):
            if answers[i] is not None:
                continue
            assert llm is not None  # opened above: an answer was missing
            generated = generate_answer(llm, s, question.question, passages[i], scorer=self._scorer)
            if generated.error:
                failures += 1
                answers[i] = CachedAnswer("", generated.first_token_ms, generated.generate_ms)
            else:
                answers[i] = CachedAnswer(generated.text, generated.first_token_ms, generated.generate_ms)
                self._answer_cache().put(key, answers[i], question_id=question.id, arm=arm)
            done += 1
            self.progress(f"generate {label}", done, len(questions))
        final = [a for a in answers if a is not None]
        judge = self._judge_llm()
        scores = []
        for n, (question, answer) in enumerate(zip(questions, final), 1):
            scores.append(self._score(question, answer.text, judge))
            if judge:
                self.progress(f"judge {label}", n, len(questions))
        out = {k: _mean(values) for k in GENERATION_DELTAS if (values := [row[k] for row in scores if k in row])}
        out["answered"] = float(sum(1 for q in questions if q.answerable and q.answers))
        out["cached"] = float(reused)
        out["llm_failures"] = float(failures)
        generate_ms = [a.generate_ms for a in final]
        first_token_ms = [a.first_token_ms for a in final if a.first_token_ms is not None]
        timing = {"generate_p50": m.percentile(generate_ms, 50), "generate_p95": m.percentile(generate_ms, 95)}
        if first_token_ms:
            timing["first_token_p50"] = m.percentile(first_token_ms, 50)
        return out, scores, timing

    def _score(self, question: Question, answer: str, judge: LLM | None) -> dict[str, float]:
        """The answer metrics this question admits; citation markers are removed before scoring."""
        text = m.strip_citations(answer)
        if not question.answerable:
            return {"unanswerable_declined": float(m.declines(text))}
        if not question.answers:
            return {}
        row = {
            "accuracy": m.accuracy(text, question.answers),
            "exact_match": m.exact_match(text, question.answers),
            "f1": m.f1_score(text, question.answers),
            "rouge_l": m.rouge_l(text, question.answers),
        }
        if judge:
            row["judge_correct"] = self._judge_score(judge, question, text)
        return row

    def _judge_llm(self) -> LLM | None:
        s = self.x.settings
        if self._judge is None and s.judge_base_url:
            endpoint = Endpoint(s.judge_base_url, s.judge_api_key or "none", s.judge_model or "gpt-4o-mini", False)
            self._judge = LLM(endpoint, s.model_copy(update={"llm_max_tokens": 4, "llm_temperature": 0.0}))
        return self._judge

    def _judge_score(self, judge: LLM, question: Question, answer: str) -> float:
        prompt = (
            "Is the candidate answer correct given the reference answers? Reply with yes or no only.\n"
            f"Question: {question.question}\nReference answers: {' | '.join(question.answers)}\n"
            f"Candidate answer: {answer}"
        )
        try:
            verdict = "".join(judge.stream([{"role": "user", "content": prompt}]))
        except LLMError:
            return 0.0
        return float(verdict.strip().lower().startswith(("yes", "예", "네")))

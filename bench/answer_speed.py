"""Answer speed and accuracy: local LLM engines × context budgets, side by side in one run.

For each engine a worker process loads the pipeline once (so each engine's peak RSS is its own)
and warms the engine with one token (as `rag serve` does), retrieves each question once per set
(the default hybrid first stage, no rerank), then answers every question under each context
configuration in turn: `passages` (whole passages as before, trimmed to 3,000 tokens)
and `sentences` at each budget (rag.generation.context). Engines run one after the other, never
at once: two on two cores would corrupt each other's timings.

Answers are cached in the repository (`bench/answers/<set>.jsonl`, keyed by question, engine,
context, passages and the generation fingerprint), so a run resumes where it stopped, on any
machine; cached answers keep the timings measured when they were generated.

Accuracy is *Lost in the Middle*'s (a gold answer appears in the answer); the sets are
docs_corpus (28), and the first N questions of KorQuAD 1.0 dev and HotpotQA dev from ../shared.

    python bench/answer_speed.py [--engines openvino,llamacpp] [--budgets passages,300,500,800,1200]
                                 [--sets docs_corpus,korquad,hotpotqa] [--limit 100] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.eval.answer_cache import AnswerCache, CachedAnswer, answer_key, passages_of  # noqa: E402
from rag.eval.metrics import accuracy  # noqa: E402
from rag.quiet import quiet_libraries  # noqa: E402
from rag.settings import Settings  # noqa: E402

CORPUS = ROOT / "docs_corpus"
SHARED = ROOT.parent / "shared" / "datasets"
ANSWERS = ROOT / "bench" / "answers"
SETS = {
    "korquad": (SHARED / "korquad1_dev" / "KorQuAD_v1.0_dev.json", "squad"),
    "hotpotqa": (SHARED / "hotpotqa_dev500" / "dev_subsampled.jsonl", "hotpotqa"),
}
PASSAGES_BUDGET = 3000  # the `passages` arm: today's whole passages and their former budget


def context_settings(base: Settings, budget: str) -> Settings:
    if budget == "passages":
        return base.model_copy(update={"context": "passages", "llm_context_tokens": PASSAGES_BUDGET})
    return base.model_copy(update={"context": "sentences", "llm_context_tokens": int(budget)})


def load_set(name: str, limit: int):
    """(questions as dicts with question/answers, a retriever over the set's corpus, its embedder scorer)."""
    from rag.generation.context import embedding_scorer
    from rag.retrieve.retrievers import open_retriever

    if name == "docs_corpus":
        from rag.pipeline import Pipeline

        index = ROOT / ".rag" / "demo-index"
        if not (index / "CURRENT").exists():
            subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(CORPUS), "--index", str(index)], check=True)
        pipeline = Pipeline(Settings(index_dir=index))
        lines = (CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line) for line in lines if line.strip()]
        return questions, pipeline.retriever, pipeline.scorer
    from rag.eval.datasets import load_eval_set
    from rag.eval.runner import prepare_index

    path, fmt = SETS[name]
    dataset = load_eval_set(path, fmt, limit=limit)
    store = prepare_index(dataset, Settings())
    retriever = open_retriever("hybrid", store)
    questions = [
        {"id": q.id, "question": q.question, "answers": list(q.answers)} for q in dataset.questions if q.answers
    ]
    return questions, retriever, embedding_scorer(retriever.embedder)


def worker(args: argparse.Namespace) -> None:
    """One engine: every set, every question, every budget; prints one JSON line of rows."""
    from rag.generation import fingerprint, generate_answer
    from rag.llm import open_llm

    base = Settings(llm_engine=args.worker)
    started = time.perf_counter()
    llm = open_llm(base)
    load_s = time.perf_counter() - started
    if llm.engine != args.worker:
        raise SystemExit(f"engine {args.worker} did not load: {llm.note}")
    warm = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello?"}]
    for _ in llm.stream(warm, max_tokens=1):  # a fresh engine's one-off set-up, as `rag serve` pays at start
        pass
    rows = []
    for set_name in args.sets.split(","):
        questions, retriever, scorer = load_set(set_name, args.limit)
        cache = AnswerCache(ANSWERS / f"{set_name}.jsonl")
        ranked = [retriever.retrieve(q["question"], base.candidates) for q in questions]
        # budget by budget, so consecutive prompts are different questions: the engines' prompt
        # caches reuse the shared system prompt, as in real use, and not the same question's documents
        for budget in args.budgets.split(","):
            s = context_settings(base, budget)
            arm = f"{llm.engine}/{s.context}/{s.llm_context_tokens}"
            for n, q in enumerate(questions, 1):
                top = ranked[n - 1][: s.top_n]
                key = answer_key(q["question"], arm, passages_of(top), fingerprint(s, llm.model, llm.engine))
                cached = cache.get(key)
                if cached is None:
                    g = generate_answer(llm, s, q["question"], ranked[n - 1], scorer=scorer)
                    if g.error:
                        print(f"{set_name} {q['id']} {arm}: {g.error}", file=sys.stderr)
                        continue
                    cached = CachedAnswer(g.text, g.first_token_ms, g.generate_ms, g.usage.get("prompt_tokens"))
                    cache.put(key, cached, question_id=str(q["id"]), arm=arm)
                rows.append(
                    {
                        "set": set_name,
                        "id": q["id"],
                        "engine": llm.engine,
                        "budget": budget,
                        "accuracy": accuracy(cached.text, q["answers"]),
                        "first_token_ms": cached.first_token_ms,
                        "total_ms": cached.generate_ms,
                        "prompt_tokens": cached.prompt_tokens,
                    }
                )
                print(f"[{set_name} {arm} {n}/{len(questions)}] {cached.text[:60]!r}", file=sys.stderr, flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": args.worker, "load_s": load_s, "peak_rss_mb": rss_mb, "rows": rows}))


def summarise(rows: list[dict]) -> dict:
    first = sorted(r["first_token_ms"] or r["total_ms"] for r in rows)
    tokens = [r["prompt_tokens"] for r in rows if r["prompt_tokens"] is not None]
    return {
        "n": len(rows),
        "accuracy": sum(r["accuracy"] for r in rows) / len(rows),
        "first_token_p50_s": statistics.median(first) / 1000,
        "first_token_p95_s": first[min(len(first) - 1, round(0.95 * (len(first) - 1)))] / 1000,
        "total_p50_s": statistics.median(r["total_ms"] for r in rows) / 1000,
        "prompt_tokens_p50": statistics.median(tokens) if tokens else None,
    }


def compare_engines(results: list[dict], sets: list[str], budgets: list[str]) -> list[dict]:
    """Each engine's accuracy against the first engine's, paired by question (the same prompts),
    per set and over all, with a 95% bootstrap interval: is an engine's difference more than the
    draw of questions?"""
    from rag.eval.stats import paired_bootstrap

    if len(results) < 2:
        return []
    first = results[0]
    out = []
    for other in results[1:]:
        for budget in budgets:
            for set_name in [*sets, "all"]:
                right = {
                    (r["set"], str(r["id"])): r["accuracy"]
                    for r in first["rows"]
                    if r["budget"] == budget and set_name in (r["set"], "all")
                }
                pairs = [
                    (r["accuracy"], right[(r["set"], str(r["id"]))])
                    for r in other["rows"]
                    if r["budget"] == budget and (r["set"], str(r["id"])) in right
                ]
                if not pairs:
                    continue
                ci = paired_bootstrap([a for a, _ in pairs], [b for _, b in pairs])
                out.append(
                    {
                        "engine": other["engine"],
                        "baseline": first["engine"],
                        "set": set_name,
                        "budget": budget,
                        "difference": ci.mean,
                        "low": ci.low,
                        "high": ci.high,
                        "n": ci.n,
                    }
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="openvino,llamacpp")
    parser.add_argument("--budgets", default="passages,300,500,800,1200")
    parser.add_argument("--sets", default="docs_corpus,korquad,hotpotqa")
    parser.add_argument("--limit", type=int, default=100, help="questions of KorQuAD and HotpotQA")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "answer_speed.json")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of accuracy against prompt tokens")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_libraries()
    if args.worker:
        return worker(args)
    results = []
    for engine in args.engines.split(","):
        command = [sys.executable, __file__, "--worker", engine, "--budgets", args.budgets, "--sets", args.sets]
        done = subprocess.run([*command, "--limit", str(args.limit)], stdout=subprocess.PIPE, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    table = []
    for result in results:
        for set_name in [*args.sets.split(","), "all"]:
            for budget in args.budgets.split(","):
                rows = [r for r in result["rows"] if r["budget"] == budget and set_name in (r["set"], "all")]
                if rows:
                    table.append({"engine": result["engine"], "set": set_name, "budget": budget, **summarise(rows)})
    print("| engine | set | context | n | accuracy | prompt tokens p50 | first token p50 / p95 s | whole p50 s |")
    print("|---|---|---|---|---|---|---|---|")
    for t in table:
        print(
            f"| {t['engine']} | {t['set']} | {t['budget']} | {t['n']} | {t['accuracy']:.3f} | "
            f"{t['prompt_tokens_p50']} | {t['first_token_p50_s']:.1f} / {t['first_token_p95_s']:.1f} | "
            f"{t['total_p50_s']:.1f} |"
        )
    for result in results:
        print(f"{result['engine']}: load {result['load_s']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
    paired = compare_engines(results, args.sets.split(","), args.budgets.split(","))
    for row in paired:
        print(
            f"{row['engine']} - {row['baseline']} accuracy, {row['set']} @ {row['budget']}: {row['difference']:+.3f} "
            f"[{row['low']:+.3f}, {row['high']:+.3f}] over {row['n']} questions both answered"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(sys.argv),
        "table": table,
        "engines": [{k: v for k, v in r.items() if k != "rows"} for r in results],
        "paired": paired,
    }
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.plot:
        plot(table, args.plot)


def plot(table: list[dict], path: Path) -> None:
    """Accuracy against prompt tokens (p50), one line per engine and set, budgets as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for engine, set_name in sorted({(t["engine"], t["set"]) for t in table}):
        points = sorted(
            (t["prompt_tokens_p50"], t["accuracy"], t["budget"])
            for t in table
            if (t["engine"], t["set"]) == (engine, set_name) and t["prompt_tokens_p50"]
        )
        if not points:
            continue
        xs, ys, _ = zip(*points)
        ax.plot(xs, ys, marker="o", label=f"{set_name} ({engine})")
        for x, y, label in points:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("prompt tokens, p50 (system prompt ~410 included)")
    ax.set_ylabel("accuracy (gold answer in the answer)")
    ax.set_title("Answer accuracy against prompt size: context budgets and whole passages")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

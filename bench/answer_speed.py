"""Time to first token and total per answer on the docs_corpus questions, local LLMs side by side.

Configurations share one retrieval + rerank per question and run interleaved question by
question, so machine noise falls on all of them alike:

- `smollm2`: SmolLM2-135M (the previous default), every passage whole;
- `qwen-untuned`: Qwen2.5-Coder-1.5B, every passage whole (the estimated 3,000-token budget), in a
  server of its own so that neither warms the other's prompt cache;
- `qwen`: Qwen2.5-Coder-1.5B as shipped: the real-token budget `RAG_LLM_CONTEXT_TOKENS`, with
  passages trimmed to their best sentences.

Accuracy is the *Lost in the Middle* measure (a gold answer appears in the answer); "cites gold"
is the share of answers citing a passage from the gold document.

    python bench/answer_speed.py [--index DIR] [--limit N] [--budget TOKENS] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.eval.metrics import accuracy  # noqa: E402
from rag.generation import generate_answer  # noqa: E402
from rag.llm import open_llm  # noqa: E402
from rag.pipeline import Answer, Pipeline  # noqa: E402
from rag.quiet import quiet_libraries  # noqa: E402
from rag.settings import Settings  # noqa: E402

CORPUS = ROOT / "docs_corpus"


def configurations(base: Settings, budget: int) -> dict[str, Settings]:
    return {
        "smollm2": base.model_copy(update={"llm_model": "smollm2", "llm_context_tokens": 3000}),
        # its own server (another context size): it must not warm the shipped configuration's prompt cache
        "qwen-untuned": base.model_copy(
            update={"llm_model": "qwen2.5-1.5b", "llm_context_tokens": 3000, "local_llm_ctx": 8192}
        ),
        "qwen": base.model_copy(update={"llm_model": "qwen2.5-1.5b", "llm_context_tokens": budget}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / ".rag" / "demo-index")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--budget", type=int, default=Settings().llm_context_tokens)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "answer_speed.json")
    args = parser.parse_args()
    quiet_libraries()
    if not (args.index / "CURRENT").exists():
        subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(CORPUS), "--index", str(args.index)], check=True)
    base = Settings(index_dir=args.index)
    pipeline = Pipeline(base)
    configs = configurations(base, args.budget)
    llms = {name: open_llm(s) for name, s in configs.items()}
    questions = [json.loads(line) for line in (CORPUS / "questions.jsonl").read_text().splitlines() if line.strip()]
    questions = questions[: args.limit]
    rows: dict[str, list[dict]] = {name: [] for name in configs}
    for n, q in enumerate(questions, 1):
        ranked = pipeline.sources(q["question"], Answer(question=q["question"], sources=[]))
        gold = {str(CORPUS / g) for g in q.get("gold_ids", [])}
        for name, settings in configs.items():
            g = generate_answer(llms[name], settings, q["question"], ranked)
            cited = {g.passages[n - 1].source for n in g.cited}
            rows[name].append(
                {
                    "id": q["id"],
                    "answer": g.text,
                    "first_token_ms": g.first_token_ms,
                    "total_ms": g.generate_ms,
                    "accuracy": accuracy(g.text, q["answers"]) if q.get("answers") else None,
                    "cites_gold": bool(cited & gold),
                    "error": g.error,
                }
            )
            print(f"[{n}/{len(questions)}] {name}: {g.generate_ms / 1000:.1f} s {g.text[:70]!r}", file=sys.stderr)
    summary = {name: _summary(r) for name, r in rows.items()}
    print("| configuration | first token p50 s | p95 s | total p50 s | accuracy | cites gold |")
    print("|---|---|---|---|---|---|")
    for name, s in summary.items():
        print(
            f"| {name} | {s['first_token_p50'] / 1000:.1f} | {s['first_token_p95'] / 1000:.1f} | "
            f"{s['total_p50'] / 1000:.1f} | {s['accuracy']:.3f} | {s['cites_gold']:.3f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M"), "budget": args.budget, "summary": summary, "rows": rows}
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


def _summary(rows: list[dict]) -> dict:
    first = sorted(r["first_token_ms"] or r["total_ms"] for r in rows)
    scored = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    return {
        "first_token_p50": statistics.median(first),
        "first_token_p95": first[min(len(first) - 1, round(0.95 * (len(first) - 1)))],
        "total_p50": statistics.median(r["total_ms"] for r in rows),
        "accuracy": sum(scored) / len(scored) if scored else 0.0,
        "cites_gold": sum(r["cites_gold"] for r in rows) / len(rows),
    }


if __name__ == "__main__":
    main()

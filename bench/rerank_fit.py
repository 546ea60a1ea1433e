"""Re-fit the bundled reranker's blend weight λ against today's first stage, on held-out questions.

    python bench/rerank_fit.py [--cache .rag/rerank-scores.json] [--write]

For each of the five evaluation sets in ../shared it opens the `rag eval` index (default embedder),
retrieves each question's top 20 with the default hybrid retriever, as `rag ask` does, and scores
the 20 candidates once with the bundled cross-encoder; the first-stage scores, the logits and each
candidate's document are cached in JSON. The held-out slices are bench/fusion_fit.py's (never the
first 300 questions, which the README reports).

Each λ on rag.training.calibrate's grid ranks by minmax(first stage) + λ * logit (rag.rerank.reranker.blend).
The objective is the issue's rule: the worst change of mrr@10 against no rerank over the five
held-out sets: among the weights within 0.001 of the best worst change, the one with the largest
mean change (ties: the smaller weight, as more first stage is the safer bet on documents unlike
these); λ = 0 (the first stage alone) is shown but not chosen. It says whether the chosen λ pays
(no held-out set lowered); `--write` stores it in the bundle's rag_reranker.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from fusion_fit import REPORTED, SETS

ROOT = Path(__file__).resolve().parent.parent
COUNT = 20


def collect(cache: Path) -> dict:
    """{set: {"heldout"|"reported": [{gold, docs, retrieval, logits}]}}, candidates in first-stage order."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from rag.eval.datasets import load_eval_set
    from rag.eval.runner import doc_id, prepare_index
    from rag.rerank import bundled
    from rag.rerank.reranker import reranker_from
    from rag.retrieve.retrievers import open_retriever
    from rag.settings import Settings

    settings = Settings()
    reranker = reranker_from(settings, bundled.NAME)
    out: dict = {}
    for name, (path, split, heldout) in SETS.items():
        data = load_eval_set(path, split=split)
        retriever = open_retriever("hybrid", prepare_index(data, settings))
        out[name] = {}
        for part, rows in (("heldout", heldout), ("reported", REPORTED)):
            lists = []
            for q in data.questions[rows]:
                if not q.gold_ids:
                    continue
                hits = retriever.retrieve(q.question, COUNT)
                logits = reranker.score(q.question, [h.chunk.text for h in hits])
                lists.append(
                    {
                        "gold": q.gold_ids,
                        "docs": [doc_id(h, data) for h in hits],
                        "retrieval": [h.retrieval_score for h in hits],
                        "logits": [float(x) for x in logits],
                    }
                )
            out[name][part] = lists
            print(f"{name} {part}: {len(lists)} questions", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def mrr_at_10(rows: list[dict], weight: float | None, rerank: bool = True) -> float:
    from rag.rerank.reranker import blend

    total = 0.0
    for row in rows:
        if rerank and row["docs"]:
            order = np.argsort(-blend(np.array(row["retrieval"]), np.array(row["logits"]), weight), kind="stable")
        else:
            order = range(len(row["docs"]))
        ranking = list(dict.fromkeys(row["docs"][i] for i in order))  # documents, as rag eval ranks them
        gold = set(row["gold"])
        total += next((1.0 / r for r, d in enumerate(ranking[:10], 1) if d in gold), 0.0)
    return total / len(rows)


def changes(lists: dict, part: str, weight: float | None) -> dict[str, float]:
    return {n: mrr_at_10(v[part], weight) - mrr_at_10(v[part], None, rerank=False) for n, v in lists.items()}


def main() -> None:
    from rag.training.calibrate import GRID

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".rag" / "rerank-scores.json")
    parser.add_argument("--write", action="store_true", help="store the chosen λ in the bundle")
    args = parser.parse_args()
    lists = collect(args.cache)
    curve = {w: changes(lists, "heldout", w) for w in GRID}
    print("held-out mrr@10 change against no rerank, per λ (None: logits alone):")
    for w, per_set in curve.items():
        cells = " ".join(f"{n}={d:+.4f}" for n, d in per_set.items())
        print(f"  λ={w!s:5s} worst {min(per_set.values()):+.4f} mean {np.mean(list(per_set.values())):+.4f}  {cells}")
    best = max(min(d.values()) for w, d in curve.items() if w)  # λ 0 is no rerank at all: not a choice
    near = [w for w in GRID if w and min(curve[w].values()) >= best - 0.001]
    chosen = max(near, key=lambda w: (round(np.mean(list(curve[w].values())), 4), -w))
    pays = min(curve[chosen].values()) >= 0 and np.mean(list(curve[chosen].values())) > 0
    print(f"\nchosen λ={chosen} (worst held-out change {min(curve[chosen].values()):+.4f}); ", end="")
    print("it pays on every set" if pays else "it lowers a set: the default should skip rerank (`none`)")
    print("reported (first 300), mrr@10 no rerank -> rerank:")
    for n, v in lists.items():
        print(f"  {n:11s} {mrr_at_10(v['reported'], None, rerank=False):.3f} -> {mrr_at_10(v['reported'], chosen):.3f}")
    if args.write:
        from rag.rerank import bundled
        from rag.rerank.reranker import BLEND_FILE

        path = bundled.FOLDER / BLEND_FILE
        fitted = json.loads(path.read_text())
        fitted |= {
            "logit_weight": chosen,
            "refit": "bench/rerank_fit.py: worst held-out mrr@10 change over five sets, hybrid top 20",
            "heldout_change": {n: round(d, 4) for n, d in curve[chosen].items()},
        }
        path.write_text(json.dumps(fitted, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

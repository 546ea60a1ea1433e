"""Can the first stage tell a question its documents answer from one they do not? Signals per
question, fitted on one set and reported on others.

Signals, each the best over the hybrid top-`k`: `dense` (e5 cosine of question and passage),
`sentence` (e5 cosine of the question and the best sentence of the top 4 passages, what the context
selection scores), `rerank` (sigmoid of the bundled reranker's logit).

Fit set: MS MARCO ko and en **training split** (id % 7 != 0): the first `--fit` queries are
answerable (their positives are in the corpus), the next `--fit` are not (their positives left out),
with the positives of further training queries as distractors. Report sets: ClapNQ dev (300
answerable, 300 not: the latter's passages are in the corpus, on topic but without the answer),
docs_corpus (28, all answerable), KorQuAD dev (first 300, all answerable).

The threshold of each signal is chosen on the fit set alone: the highest that still answers
`--keep` of its answerable questions; the report sets say what it does elsewhere.

    python bench/abstain_fit.py [--fit 150] [--keep 0.95] [--out bench/results/abstain.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "datasets"
SIGNALS = ("dense", "sentence", "rerank")


def fit_set(path: Path, n: int, distractors: int):
    """Answerable and unanswerable MS MARCO training queries over one corpus (see the docstring)."""
    from ingest.writer import Record
    from rag.eval.datasets import EvalSet, Question, _short_hash

    rows = [r for r in json.loads(path.read_text(encoding="utf-8")) if int(r["id"]) % 7 != 0]
    asked, unasked, extra = rows[:n], rows[n : 2 * n], rows[2 * n : 2 * n + distractors]
    records = {}
    for row in asked + extra:
        for passage in row["positive"]:
            records.setdefault(_short_hash(passage), Record(_short_hash(passage), passage))
    questions = [Question(str(r["id"]), r["query"], [_short_hash(p) for p in r["positive"]]) for r in asked]
    questions += [Question(str(r["id"]), r["query"], [], answerable=False) for r in unasked]
    return EvalSet(f"fit-{path.stem}", "msmarco", questions, records=list(records.values()))


def signals(dataset, k: int) -> list[dict]:
    from rag.eval.runner import prepare_index
    from rag.generation.context import embedding_scorer, split_sentences
    from rag.rerank.reranker import reranker_from
    from rag.retrieve.retrievers import open_retriever
    from rag.settings import Settings

    settings = Settings()
    store = prepare_index(dataset, settings)
    retriever = open_retriever("hybrid", store)
    reranker = reranker_from(settings.model_copy(update={"reranker": "rag-e5-ko-en"}))
    score = embedding_scorer(retriever.embedder)
    out = []
    for q in dataset.questions:
        hits = retriever.retrieve(q.question, k)
        dense = retriever.dense.search(q.question, 1)
        sentences = [hit.chunk.text[s:e] for hit in hits[:4] for s, e in split_sentences(hit.chunk.text)]
        ranked = reranker.rerank(q.question, hits, 1)
        out.append(
            {
                "id": q.id,
                "answerable": q.answerable,
                "dense": dense[0][1] if dense else 0.0,
                "sentence": float(max(score(q.question, sentences))) if sentences else 0.0,
                "rerank": ranked[0].rerank_prob if ranked else 0.0,
            }
        )
    return out


def threshold(rows: list[dict], signal: str, keep: float) -> float:
    """The highest cut that still answers `keep` of the answerable questions."""
    kept = sorted((r[signal] for r in rows if r["answerable"]), reverse=True)
    return kept[max(0, int(keep * len(kept)) - 1)]


def rates(rows: list[dict], signal: str, cut: float) -> dict:
    asked = [r for r in rows if r["answerable"]]
    unasked = [r for r in rows if not r["answerable"]]
    return {
        "answered": sum(r[signal] >= cut for r in asked) / len(asked) if asked else None,
        "declined": sum(r[signal] < cut for r in unasked) / len(unasked) if unasked else None,
        "n": [len(asked), len(unasked)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", type=int, default=150)
    parser.add_argument("--distractors", type=int, default=700)
    parser.add_argument("--keep", type=float, default=0.95)
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "abstain.json")
    args = parser.parse_args()
    from rag.eval.datasets import load_eval_set
    from rag.quiet import quiet_libraries

    quiet_libraries()
    marco = SHARED / "msmarco_kor"
    sets = {
        "fit: MS MARCO ko train": lambda: fit_set(marco / "msmarco_kor.json", args.fit, args.distractors),
        "fit: MS MARCO en train": lambda: fit_set(marco / "msmarco_eng.json", args.fit, args.distractors),
        "ClapNQ dev": lambda: load_eval_set(SHARED / "clapnq_dev"),
        "docs_corpus": lambda: load_eval_set(ROOT / "docs_corpus" / "questions.jsonl"),
        "KorQuAD dev 300": lambda: load_eval_set(SHARED / "korquad1_dev", limit=300),
    }
    measured = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name, build in sets.items():
        if name not in measured:
            measured[name] = signals(build(), args.k)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(measured))
            print(f"measured {name}", file=sys.stderr, flush=True)
    fit = [row for name, rows in measured.items() if name.startswith("fit:") for row in rows]
    print(f"threshold: answers {args.keep:.0%} of the fit set's answerable questions\n")
    print("| signal | cut | " + " | ".join(measured) + " |")
    print("|---|---|" + "---|" * len(measured))
    for signal in SIGNALS:
        cut = threshold(fit, signal, args.keep)
        cells = []
        for rows in measured.values():
            r = rates(rows, signal, cut)
            answered = f"answered {r['answered']:.2f}" if r["answered"] is not None else ""
            declined = f"declined {r['declined']:.2f}" if r["declined"] is not None else ""
            cells.append(" / ".join(c for c in (answered, declined) if c))
        print(f"| {signal} | {cut:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

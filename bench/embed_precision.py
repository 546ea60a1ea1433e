"""What the int8 embedder costs in ranking: dense retrieval with it against float32, same chunks.

    python bench/embed_precision.py [--sets korquad,msmarco-ko,msmarco-en]

For each set it opens the `rag eval` index of the default embedder (built by `rag eval` or
bench/fusion_fit.py if absent), whose chunks the default `onnx-int8` backend embedded through the
real ingest path, and ranks each question with the real dense retriever (20 chunks, as `rag eval
--candidates 20`). The float32 arm embeds the very same chunk texts and questions with the `torch`
backend (sentence-transformers, float32) and ranks by exact cosine. Documents are ranked as `rag
eval` ranks them (a chunk's document, first occurrence), hit@1 and mrr@10 on the first 300
questions (the ones the README reports) and on the held-out slices of bench/fusion_fit.py.
The float32 vectors are cached in .rag/ (they take minutes on a laptop CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fusion_fit import REPORTED, SETS

ROOT = Path(__file__).resolve().parent.parent
COUNT = 20


def ranks(rankings: list[list[str]], questions) -> tuple[float, float]:
    """hit@1 and mrr@10 of document rankings against the questions' gold documents."""
    hit = mrr = 0.0
    for ranking, q in zip(rankings, questions, strict=True):
        docs = list(dict.fromkeys(ranking))[:10]
        gold = set(q.gold_ids)
        hit += float(bool(docs) and docs[0] in gold)
        mrr += next((1.0 / r for r, d in enumerate(docs, 1) if d in gold), 0.0)
    return hit / len(questions), mrr / len(questions)


def measure(name: str) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    from rag.eval.datasets import load_eval_set
    from rag.eval.runner import doc_id, prepare_index
    from rag.models.embedder import load_embedder
    from rag.retrieve.retrievers import DenseRetriever
    from rag.settings import Settings

    path, split, heldout = SETS[name]
    data = load_eval_set(path, split=split)
    if data.folder is not None:
        raise SystemExit(f"{name}: a corpus of files; this bench reads in-memory corpora (chunk path = document)")
    dense = DenseRetriever.open(prepare_index(data, Settings()))
    rows = dense.index.db.execute("SELECT id, path, title, text FROM chunks ORDER BY id").fetchall()
    chunk_docs = [row[1] for row in rows]  # in-memory corpora: a chunk's path is its document id
    cache = ROOT / ".rag" / f"fp32-{name}-{len(rows)}.npy"
    exact = load_embedder(dense.embedder.model_id, backend="torch")
    if cache.is_file():
        passages = np.load(cache, allow_pickle=False)
    else:
        passages = exact.embed_passages([f"{title}\n{text}" for _, _, title, text in rows])
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, passages, allow_pickle=False)
    out = {}
    for part, sl in (("reported", REPORTED), ("heldout", heldout)):
        questions = [q for q in data.questions[sl] if q.gold_ids]
        int8 = [[doc_id(h, data) for h in dense.retrieve(q.question, COUNT)] for q in questions]
        scores = exact.embed_queries([q.question for q in questions]) @ passages.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :COUNT]
        fp32 = [[chunk_docs[i] for i in row] for row in top]
        out[part] = (ranks(int8, questions), ranks(fp32, questions))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="korquad,msmarco-ko,msmarco-en", help=f"of {', '.join(SETS)}")
    args = parser.parse_args()
    print(f"{'set':11s} {'questions':9s} {'int8 hit@1/mrr@10':>18s} {'float32':>14s} {'mrr@10 change':>14s}")
    for name in args.sets.split(","):
        for part, ((ih, im), (fh, fm)) in measure(name).items():
            print(f"{name:11s} {part:9s} {ih:>9.3f} / {im:.3f} {fh:>6.3f} / {fm:.3f} {im - fm:>+14.4f}", flush=True)


if __name__ == "__main__":
    main()

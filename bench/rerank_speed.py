"""Rerank speed side by side: LangChain's CrossEncoderReranker against our Reranker, same weights.

    python bench/rerank_speed.py [--model PATH] [--queries 30] [--candidates 20]

The model defaults to the bundled reranker (rag-e5-ko-en, assembled offline).

Candidates are the default (hybrid) top-20 of HotpotQA questions from ../shared (docs_corpus
questions when it is absent). Every query is reranked by each variant in turn, the variant going
first rotating from query to query (a run right after another on the same text can find caches
warm), so machine load and order hit them alike; the report is p50/p95 ms per query, pairs/s and
the ratio to LangChain's p50.
Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def candidates(queries: int, depth: int) -> list[tuple[str, list[str]]]:
    from rag.eval.datasets import load_eval_set
    from rag.eval.runner import prepare_index
    from rag.retrieve.retrievers import open_retriever
    from rag.settings import Settings

    shared = ROOT.parent / "shared" / "datasets" / "hotpotqa_dev500"
    data = load_eval_set(shared if shared.is_dir() else ROOT / "docs_corpus", limit=queries)
    retriever = open_retriever("hybrid", prepare_index(data, Settings()))
    return [(q.question, [h.chunk.text for h in retriever.retrieve(q.question, depth)]) for q in data.questions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="CrossEncoder folder or hub id (default: the bundled reranker)")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=20)
    args = parser.parse_args()

    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_core.documents import Document

    with warnings.catch_warnings():  # its sunset notice, raised at our import line
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder

    from rag.quiet import quiet_libraries
    from rag.rerank import bundled
    from rag.rerank.reranker import Reranker

    quiet_libraries()
    model = args.model or str(bundled.assemble())
    work = candidates(args.queries, args.candidates)
    langchain = CrossEncoderReranker(model=HuggingFaceCrossEncoder(model_name=model), top_n=4)
    variants = {
        "langchain CrossEncoderReranker": lambda q, ps: langchain.compress_documents(
            [Document(page_content=p) for p in ps], q
        ),
        "rag Reranker (max_length 512)": Reranker(model, batch_size=16, max_length=512).score,
        "rag Reranker (max_length 256)": Reranker(model, batch_size=16, max_length=256).score,
        "rag torch-bf16 (256, batch 8)": Reranker(model, 8, 256, "torch-bf16").score,
        "rag onnx-int8 (256, batch 2)": Reranker(model, 2, 256, "onnx-int8").score,
        "rag onnx-int8 (256, batch 4)": Reranker(model, 4, 256, "onnx-int8").score,
        "rag onnx-int8 (256, batch 1)": Reranker(model, 1, 256, "onnx-int8").score,
    }
    for fn in variants.values():  # warm-up
        fn(*work[0])
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for turn, (query, passages) in enumerate(work):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:  # each variant leads in turn
            fn = variants[name]
            started = time.perf_counter()
            fn(query, passages)
            times[name].append((time.perf_counter() - started) * 1000)
    pairs = sum(len(p) for _, p in work)
    base = statistics.median(next(iter(times.values())))
    print(f"{len(work)} queries, {pairs / len(work):.0f} candidates each, model {model}")
    print(f"{'variant':34s} {'p50 ms':>8s} {'p95 ms':>8s} {'pairs/s':>8s} {'speed-up':>8s}")  # vs LangChain
    for name, values in times.items():
        p50 = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{name:34s} {p50:8.0f} {p95:8.0f} {pairs / (sum(values) / 1000):8.1f} {base / p50:7.2f}x")


if __name__ == "__main__":
    main()

"""Ingest and query-embedding speed side by side: LangChain's FAISS.from_documents against rag ingest.

    python bench/ingest_speed.py [--paragraphs 964] [--queries 100] [--runs 2]

The corpus is KorQuAD dev's paragraphs from ../shared (title + paragraph, as `rag eval` ingests
them). rag ingest goes first in each run through the real path (read, chunk, embed, BM25-tokenize,
write FAISS + SQLite, commit) into a fresh folder; LangChain then embeds the very chunk texts that
ingest produced (read back from its chunks table) with `FAISS.from_documents`, so every variant
does the same embedding work and chunks/s compare like for like. Models load before the clock
starts (the load times are printed apart). Variants:

- LangChain, all-MiniLM-L6-v2 (HuggingFaceEmbeddings, the packaged weights): the baseline;
- LangChain, multilingual-e5-small (the same weights rag uses, float32 torch);
- rag ingest, multilingual-e5-small, `onnx-int8` (the default) and `torch` (float32).

Query embedding: the first `--queries` KorQuAD questions one at a time, p50 ms, for each.
The runs alternate which LangChain variant goes first. Needs the bench extra:
pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import statistics
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KORQUAD = ROOT.parent / "shared" / "datasets" / "korquad1_dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=0, help="first N paragraphs (default: all 964)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if not KORQUAD.is_dir():
        raise SystemExit(f"needs {KORQUAD} (KorQuAD 1.0 dev, see ../shared/README.md)")

    from langchain_core.documents import Document

    with warnings.catch_warnings():  # its sunset notice, raised at our import line
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.embeddings import HuggingFaceEmbeddings
        from langchain_community.vectorstores import FAISS

    from ingest.writer import IndexWriter
    from rag.eval.datasets import load_eval_set
    from rag.models.embedder import load_embedder, resolve_model_path
    from rag.quiet import quiet_libraries
    from rag.settings import PACKAGED_EMBEDDER, Settings
    from rag.store.local import CHUNKS_DB, live_generation

    quiet_libraries()
    data = load_eval_set(KORQUAD)
    records = data.records[: args.paragraphs] if args.paragraphs else data.records
    questions = [q.question for q in data.questions[: args.queries]]

    loads: dict[str, float] = {}

    def timed_load(name: str, make):
        started = time.perf_counter()
        value = make()
        loads[name] = time.perf_counter() - started
        return value

    e5 = "multilingual-e5-small"
    lc_models = {
        "LangChain FAISS, all-MiniLM-L6-v2": timed_load(
            "LangChain MiniLM", lambda: HuggingFaceEmbeddings(model_name=resolve_model_path(PACKAGED_EMBEDDER))
        ),
        "LangChain FAISS, multilingual-e5-small": timed_load(
            "LangChain e5", lambda: HuggingFaceEmbeddings(model_name=resolve_model_path(e5))
        ),
    }
    ours = {
        f"rag ingest, e5-small {b}": (b, timed_load(f"rag {b}", lambda b=b: load_embedder(e5, 32, b)))
        for b in ("onnx-int8", "torch")
    }

    results: dict[str, list[float]] = {}
    query_ms: dict[str, list[float]] = {}
    chunks: list[str] = []
    for run in range(args.runs):
        for name, (backend, embedder) in ours.items():
            with tempfile.TemporaryDirectory() as folder:
                settings = Settings(index_dir=Path(folder), embedder=e5, embed_backend=backend)
                report = IndexWriter(settings).ingest_records(records)
                with sqlite3.connect(live_generation(Path(folder)) / CHUNKS_DB) as db:
                    chunks = [t + "\n" + x if t else x for t, x in db.execute("SELECT title, text FROM chunks")]
            results.setdefault(name, []).append(report.chunks_added / report.seconds)
            times = []
            for question in questions:
                started = time.perf_counter()
                embedder.embed_queries([question])
                times.append((time.perf_counter() - started) * 1000)
            query_ms.setdefault(name, []).append(statistics.median(times))
        documents = [Document(page_content=text) for text in chunks]
        order = list(lc_models) if run % 2 == 0 else list(reversed(lc_models))
        for name in order:
            model = lc_models[name]
            started = time.perf_counter()
            FAISS.from_documents(documents, model)
            results.setdefault(name, []).append(len(documents) / (time.perf_counter() - started))
            times = []
            for question in questions:
                started = time.perf_counter()
                model.embed_query(question)
                times.append((time.perf_counter() - started) * 1000)
            query_ms.setdefault(name, []).append(statistics.median(times))

    print(f"{len(records)} KorQuAD paragraphs -> {len(chunks)} chunks, {len(questions)} queries, {args.runs} runs")
    print("model loads: " + ", ".join(f"{k} {v:.1f} s" for k, v in loads.items()))
    base = results["LangChain FAISS, all-MiniLM-L6-v2"]
    print(f"{'variant':42s} {'chunks/s per run':>22s} {'vs LangChain MiniLM':>22s} {'query p50 ms':>16s}")
    for name in [*lc_models, *ours]:
        rates = results[name]
        ratio = " / ".join(f"{r / b:.2f}x" for r, b in zip(rates, base, strict=True))
        print(
            f"{name:42s} {' / '.join(f'{r:.1f}' for r in rates):>22s} {ratio:>22s} "
            f"{' / '.join(f'{m:.1f}' for m in query_ms[name]):>16s}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (all four models loaded): {peak:.0f} MB")


if __name__ == "__main__":
    main()

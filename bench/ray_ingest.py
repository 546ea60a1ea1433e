"""Ingest with Ray vs the plain path, and query latency on FAISS (local) vs Milvus Lite, in one run.

KorQuAD 1.0 dev paragraphs are ingested three times from scratch: the plain path into the local
store, `--ray` (a local Ray on this machine's cores) into the local store, and `--ray` into Milvus
Lite. Each ingest's time is split by stage (read+chunk, embed, tokenize, commit) from the writer's
progress callback; model loads count (the plain path loads the embedder once, every Ray actor loads
its own). Ray's start is timed apart. Then the first N questions are asked of the plain local index
and of the Milvus one (same vectors, same tokens) with each retriever: p50 and p95 per query, and
how many top-5 lists agree.

    python bench/ray_ingest.py ../shared/datasets/korquad1_dev --paragraphs 300 --queries 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from ingest.ray_pipeline import LOCAL, RayCompute, ray_compute
from ingest.writer import Compute, IndexWriter, IngestReport, LocalCompute
from rag.eval.datasets import load_eval_set
from rag.models.onnx_int8 import cores
from rag.quiet import quiet_libraries
from rag.retrieve.retrievers import open_retriever
from rag.settings import Settings
from rag.store import Store, open_store

DEFAULT_DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "korquad1_dev"


STAGES = ("reading", "embedding", "tokenizing")


def timed_ingest(settings: Settings, compute: Compute, records) -> tuple[IngestReport, list[float]]:
    """The ingest, and the seconds each stage added (read+chunk, embed, tokenize, commit): a stage
    runs from the previous one's last progress call to its own last, overheads (Ray's scheduling,
    actors loading the model) included; the commit is what follows."""
    last: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        last[stage] = time.perf_counter()

    began = time.perf_counter()
    report = IndexWriter(settings, progress, compute=compute).ingest_records(records)
    ends = [began, *(last[stage] for stage in STAGES), time.perf_counter()]
    return report, [after - before for before, after in pairwise(ends)]


def latencies(store: Store, retriever: str, questions: list[str]) -> tuple[list[float], list[list[int]]]:
    search = open_retriever(retriever, store)
    for question in questions[:3]:  # warm: first calls load models and caches
        search.retrieve(question, 5)
    times, tops = [], []
    for question in questions:
        started = time.perf_counter()
        hits = search.retrieve(question, 5)
        times.append((time.perf_counter() - started) * 1000)
        tops.append([h.chunk.id for h in hits])
    return times, tops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, nargs="?", default=DEFAULT_DATASET)
    parser.add_argument("--paragraphs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=min(2, cores()), help="local Ray's CPUs")
    args = parser.parse_args()
    if not args.dataset.exists():
        sys.exit(f"skipped: no dataset at {args.dataset} (KorQuAD 1.0 dev, as rag eval reads it)")
    quiet_libraries()
    data = load_eval_set(args.dataset)
    records = data.records[: args.paragraphs]
    questions = [q.question for q in data.questions[: args.queries]]

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        runs: dict[str, tuple[IngestReport, list[float]]] = {}
        runs["plain → local"] = timed_ingest(Settings(index_dir=root / "plain"), LocalCompute(), records)
        started = time.perf_counter()
        with ray_compute(LOCAL, args.cpus):
            ray_start = time.perf_counter() - started
            runs["ray → local"] = timed_ingest(Settings(index_dir=root / "ray"), RayCompute(), records)
            milvus = Settings(index_dir=root / "milvus", store="milvus")
            runs["ray → milvus lite"] = timed_ingest(milvus, RayCompute(), records)

        report = runs["plain → local"][0]
        print(
            f"\n{data.name}: {len(records)} paragraphs → {report.chunks_added} chunks; {cores()} cores "
            f"(local Ray: {args.cpus} CPUs, started in {ray_start:.1f} s, not counted below)\n"
        )
        print("| ingest | seconds | chunks/s | chunks/s per core | read+chunk | embed | tokenize | commit |")
        print("|---|---|---|---|---|---|---|---|")
        for name, (done, stages) in runs.items():
            rate = done.chunks_added / done.seconds
            parts = " | ".join(f"{seconds:.1f}" for seconds in stages)
            print(f"| {name} | {done.seconds:.1f} | {rate:.1f} | {rate / args.cpus:.1f} | {parts} |")

        local, lite = open_store(Settings(index_dir=root / "plain")), open_store(milvus)
        print(f"\n{len(questions)} questions, top 5, after 3 warm-up queries\n")
        print("| retriever | FAISS local p50 / p95 ms | Milvus Lite p50 / p95 ms | same top-5 |")
        print("|---|---|---|---|")
        for retriever in ("dense", "bm25", "hybrid"):
            ours, our_tops = latencies(local, retriever, questions)
            theirs, their_tops = latencies(lite, retriever, questions)
            same = sum(a == b for a, b in zip(our_tops, their_tops))
            print(
                f"| {retriever} | {statistics.median(ours):.1f} / {_p95(ours):.1f} | "
                f"{statistics.median(theirs):.1f} / {_p95(theirs):.1f} | {same}/{len(questions)} |"
            )
        from rag.store.milvus import release_all

        release_all()


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


if __name__ == "__main__":
    main()

"""Should the Milvus store use Milvus's own BM25 (its analyzers) or sparse vectors of our Kiwi tokens?

Issue 17 asked to measure it on KorQuAD: the same chunks (title + text, as ingest embeds them) are
indexed twice, by Milvus's BM25 function with each analyzer the installed Milvus Lite offers, and by
bm25s over `rag.retrieve.lexical` tokens (what the local store does), and the first N questions are scored by
mrr@10 and hit@1 over documents. BM25 only: no embedding model is loaded, so it runs in a minute.

    python bench/milvus_analyzer.py ../shared/datasets/korquad1_dev --limit 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ingest.chunking import chunk_text
from rag.eval import metrics as m
from rag.eval.datasets import load_eval_set
from rag.quiet import quiet_libraries
from rag.retrieve.lexical import tokenize, tokenize_many
from rag.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--limit", type=int, default=300)
    # Milvus Lite 3.2 has `standard` and `jieba` (Chinese; needs the jieba package); a Milvus server also
    # has lindera with ko-dic, which Lite lacks, so the store could not use it with one client code
    parser.add_argument("--analyzers", default="standard", help="Milvus tokenizers to try, comma-separated")
    args = parser.parse_args()
    quiet_libraries()
    data = load_eval_set(args.dataset, "auto", "all", args.limit)
    settings = Settings()
    rows = [
        (record.id, f"{record.title}\n{c.text}")
        for record in data.records
        for c in chunk_text(record.text, settings.chunk_size, settings.chunk_overlap)
    ]
    questions = [q for q in data.questions if q.gold_ids]
    print(f"{data.name}: {len(rows)} chunks, {len(questions)} questions")

    def score(name: str, search) -> None:
        started = time.perf_counter()
        rankings = [m.document_ranking(rows[i][0] for i in search(q.question)) for q in questions]
        ms = (time.perf_counter() - started) * 1000 / len(questions)
        mrr = np.mean([m.mrr_at(r, set(q.gold_ids), 10) for r, q in zip(rankings, questions)])
        hit1 = np.mean([m.hit_at(r, set(q.gold_ids), 1) for r, q in zip(rankings, questions)])
        print(f"{name:<28} mrr@10 {mrr:.3f}  hit@1 {hit1:.3f}  {ms:.0f} ms/query")

    import bm25s

    index = bm25s.BM25()
    index.index(tokenize_many([text for _, text in rows]), show_progress=False)

    def ours(question: str) -> list[int]:
        scores = index.get_scores(tokenize(question) or [""])
        top = np.argsort(-scores, kind="stable")[:20]
        return [int(i) for i in top if scores[i] > 0]

    score("bm25s over Kiwi (local)", ours)

    from pymilvus import DataType, Function, FunctionType, MilvusClient

    with tempfile.TemporaryDirectory() as folder:
        client = MilvusClient(str(Path(folder) / "milvus.db"))
        for analyzer in args.analyzers.split(","):
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field(
                "text",
                DataType.VARCHAR,
                max_length=65535,
                enable_analyzer=True,
                analyzer_params={"tokenizer": analyzer},
            )
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function("bm25", FunctionType.BM25, ["text"], ["sparse"]))
            params = client.prepare_index_params()
            params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            try:
                client.create_collection(analyzer, schema=schema, index_params=params)
            except Exception as exc:  # an analyzer this Milvus does not have
                print(f"milvus BM25, {analyzer:<16} unavailable: {exc}")
                continue
            for begin in range(0, len(rows), 500):
                batch = range(begin, min(begin + 500, len(rows)))
                client.insert(analyzer, [{"id": i, "text": rows[i][1]} for i in batch])
            client.flush(analyzer)

            def theirs(question: str, collection: str = analyzer) -> list[int]:
                found = client.search(collection, [question], anns_field="sparse", limit=20, output_fields=["id"])
                return [hit["id"] for hit in found[0]]

            score(f"milvus BM25, {analyzer}", theirs)


if __name__ == "__main__":
    main()

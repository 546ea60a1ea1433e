"""Follow-up questions over docs_corpus (tests/data/followups.jsonl): is the gold document the first
source, when the follow-up is retrieved as asked, joined to the earlier question, or both fused
(what the pipeline does)? Hybrid retrieval, no reranker, the default index settings.

    python bench/followups.py [--index DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path(tempfile.gettempdir()) / "rag-bench-followups")
    args = parser.parse_args()
    from ingest.writer import IndexWriter
    from rag.generation.followup import Turn, retrieval_queries
    from rag.quiet import quiet_libraries
    from rag.retrieve.fusion import reciprocal_rank
    from rag.retrieve.retrievers import open_retriever
    from rag.settings import Settings
    from rag.store import open_store

    quiet_libraries()
    settings = Settings(index_dir=args.index)
    IndexWriter(settings).ingest([ROOT / "docs_corpus"])
    retriever = open_retriever("hybrid", open_store(settings))
    cases = [json.loads(line) for line in (ROOT / "tests" / "data" / "followups.jsonl").read_text().splitlines()]
    firsts = {"as asked": 0, "earlier question + follow-up": 0, "both, fused (the pipeline)": 0}
    print("| id | follow-up | as asked | joined | fused |\n|---|---|---|---|---|")
    for case in cases:
        asked, joined = retrieval_queries([Turn(q, a) for q, a in case["history"]], case["question"])
        lists = [retriever.retrieve(asked, settings.candidates), retriever.retrieve(joined, settings.candidates)]
        ranked = [*lists, reciprocal_rank(lists, settings.candidates)]
        ranks = [next((i for i, h in enumerate(hits, 1) if h.source.endswith(case["gold"])), None) for hits in ranked]
        for name, rank in zip(firsts, ranks, strict=True):
            firsts[name] += rank == 1
        print(f"| {case['id']} | {case['question']} | " + " | ".join(str(r or "-") for r in ranks) + " |")
    print()
    for name, count in firsts.items():
        print(f"{name}: gold first {count}/{len(cases)}")


if __name__ == "__main__":
    main()

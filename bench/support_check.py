"""The cited-sentence check (rag.generation.support) against hand labels.

`--generate` answers the docs_corpus questions, the follow-ups of tests/data/followups.jsonl and
the questions of bench/support_questions.jsonl (written for this check over docs_corpus) with the
default pipeline (local LLM, hybrid, no reranker) and adds each answer with the passages it read to
bench/answers/support.jsonl (docs_corpus is this project's own text); answers there are kept. Each answer
sentence was then labelled by reading it against its passages: bench/answers/support_labels.jsonl,
`{"id", "sentence", "supported"}` (supported: every fact it states is in the passages it cites).
Without `--generate` the script re-checks the stored answers and reports the flag's precision and
recall for "not supported", and the embedder's support score on each side.

    python bench/support_check.py [--generate]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ANSWERS = ROOT / "bench" / "answers" / "support.jsonl"
LABELS = ROOT / "bench" / "answers" / "support_labels.jsonl"


def generate() -> None:
    import tempfile

    from ingest.writer import IndexWriter
    from rag.generation.followup import Turn
    from rag.pipeline import Pipeline
    from rag.quiet import quiet_libraries
    from rag.settings import Settings

    quiet_libraries()
    settings = Settings(index_dir=Path(tempfile.gettempdir()) / "rag-bench-support")
    IndexWriter(settings).ingest([ROOT / "docs_corpus"])
    pipeline = Pipeline(settings)
    asked = [json.loads(line) for line in (ROOT / "docs_corpus" / "questions.jsonl").read_text().splitlines()]
    follow = [json.loads(line) for line in (ROOT / "tests" / "data" / "followups.jsonl").read_text().splitlines()]
    cases = [(q["id"], q["question"], []) for q in asked]
    cases += [(f["id"], f["question"], [Turn(q, a) for q, a in f["history"]]) for f in follow]
    extra = (ROOT / "bench" / "support_questions.jsonl").read_text().splitlines()
    cases += [(q["id"], q["question"], []) for q in map(json.loads, extra)]
    done = {json.loads(line)["id"] for line in ANSWERS.read_text().splitlines()} if ANSWERS.is_file() else set()
    with ANSWERS.open("a", encoding="utf-8") as out:
        for case_id, question, history in (case for case in cases if case[0] not in done):
            answer = pipeline.ask(question, history=history)
            row = {
                "id": case_id,
                "question": question,
                "answer": answer.answer,
                "abstained": answer.abstained,
                "passages": [hit.chunk.text for hit in answer.sources],
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(case_id, answer.answer, flush=True)


def report() -> None:
    from rag.generation.context import embedding_scorer
    from rag.generation.support import check_answer
    from rag.models.embedder import load_embedder
    from rag.quiet import quiet_libraries
    from rag.retrieve.hits import Hit
    from rag.store import StoredChunk

    quiet_libraries()
    scorer = embedding_scorer(load_embedder("multilingual-e5-small"))
    labels = {(r["id"], r["sentence"]): r["supported"] for r in map(json.loads, LABELS.read_text().splitlines())}
    flagged_right = flagged = unsupported = 0
    support: dict[bool, list[float]] = {True: [], False: []}
    for row in map(json.loads, ANSWERS.read_text().splitlines()):
        hits = [Hit(StoredChunk(i, "", "", None, 0, len(t), t), 0.0, i) for i, t in enumerate(row["passages"], 1)]
        for check in check_answer(row["answer"], hits, scorer) if not row["abstained"] else []:
            label = labels[(row["id"], check.sentence)]
            flagged += not check.supported
            unsupported += not label
            flagged_right += not check.supported and not label
            support[label].append(check.support)
    total = sum(map(len, support.values()))
    print(f"{total} sentences labelled, {unsupported} not supported")
    print(f"flag 'not supported': {flagged} raised, {flagged_right} right")
    precision = flagged_right / flagged if flagged else float("nan")
    print(f"precision {precision:.2f}, recall {flagged_right / unsupported:.2f}")
    for label, values in support.items():
        print(f"embedder support, {'supported' if label else 'not supported'}: median {statistics.median(values):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generate", action="store_true")
    args = parser.parse_args()
    generate() if args.generate else report()


if __name__ == "__main__":
    main()

"""Training pairs for the reranker, and hard negatives mined with our own retrieval.

Input jsonl rows: {"query": str, "positives": [str, ...], "negatives"?: [str, ...]}.
MS MARCO files ({id, query, positive: [...]}) are read directly; only rows with `id % 7 != 0` (the
training split) are ever used, the others being the evaluation split.
Negatives: every passage of the training file forms a corpus, ingested through the normal ingest
path; each query's top BM25 and dense results that are not its positives are its hard negatives.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ingest.writer import IndexWriter, Progress, Record
from rag.errors import RagError
from rag.hangul import HANGUL
from rag.retrieve.retrievers import BM25Retriever, DenseRetriever
from rag.settings import Settings


@dataclass
class Example:
    query: str
    positives: list[str]
    negatives: list[str] = field(default_factory=list)


def passage_id(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def read_examples(path: Path) -> list[Example]:
    """Our jsonl format, or an MS MARCO JSON file (training split only)."""
    if not path.is_file():
        raise RagError(f"{path}: no such training file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        rows = json.loads(text)
        if not (isinstance(rows, list) and rows and {"id", "query", "positive"} <= set(rows[0])):
            raise RagError(f"{path}: expected an MS MARCO list of {{id, query, positive}}")
        return [Example(r["query"], list(r["positive"])) for r in rows if int(r["id"]) % 7 != 0]
    examples = []
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 is valid inside JSON
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append(Example(row["query"], list(row["positives"]), list(row.get("negatives", []))))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RagError(f"{path}:{number}: expected {{query, positives, negatives?}} ({exc})") from None
    return examples


def corpus_index(examples: list[Example], settings: Settings, progress: Progress | None = None) -> Path:
    """An index over every passage of `examples` (each passage's path is its id), built once and cached.

    Mining and the blend-weight fit both retrieve from it; the cache key is the passage set, so a
    file re-read after mining (its negatives drawn from the same passages) reuses the index.
    """
    passages = {passage_id(p): p for e in examples for p in e.positives + e.negatives}
    key = hashlib.sha256("".join(sorted(passages)).encode()).hexdigest()[:16]
    index_dir = settings.eval_cache_dir / f"train-{key}-{settings.embedder.replace('/', '_')}"
    records = [Record(pid, text) for pid, text in passages.items()]
    local = settings.model_copy(update={"index_dir": index_dir, "store": "local"})  # a cache: always a folder
    IndexWriter(local, progress).ingest_records(records)
    return index_dir


def mine_negatives(
    examples: list[Example],
    settings: Settings,
    per_query: int = 15,
    depth: int = 30,
    progress: Progress | None = None,
) -> None:
    """Fill each example's negatives (up to `per_query`) from BM25 and dense top-`depth` results.

    Examples that already bring `per_query` negatives are left as they are (nothing is indexed
    when all do), so a file written by an earlier mining run trains without mining again.
    """
    wanting = [e for e in examples if len(e.negatives) < per_query]
    if not wanting:
        return
    index_dir = corpus_index(examples, settings, progress)
    passages = {passage_id(p): p for e in examples for p in e.positives + e.negatives}
    dense = DenseRetriever.open(index_dir)
    lexical = BM25Retriever(dense.index)
    for n, example in enumerate(wanting, 1):
        positives = {passage_id(p) for p in example.positives}
        seen = set(positives) | {passage_id(p) for p in example.negatives}
        ranked: list[str] = []
        # interleave the two lists so both kinds of hard negative are represented
        lists = [lexical.retrieve(example.query, depth), dense.retrieve(example.query, depth)]
        for pair in zip(*lists, strict=False):
            for hit in pair:
                if hit.chunk.path not in seen:
                    seen.add(hit.chunk.path)
                    ranked.append(passages[hit.chunk.path])
        example.negatives += ranked[: max(0, per_query - len(example.negatives))]
        if progress:
            progress("mining negatives", n, len(wanting))


def split_validation(examples: list[Example], size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """A fixed, seeded held-out slice for early stopping."""
    shuffled = examples[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[size:], shuffled[:size]


def lengthen(examples: list[Example], share: float, seed: int, max_chars: int = 850) -> list[Example]:
    """Embed every passage of a seeded `share` of the queries in filler passages of other queries.

    A cross-encoder trained on short passages learns that extra text means irrelevance: ours scored
    a 401-character KorQuAD paragraph -2.7 for a question its first sentence answers, and that
    sentence alone +2.7. Padding positives and negatives alike (filler of the same script, the
    passage at a random place) keeps length from being a cue, so relevance has to come from what
    the passage says. A padded passage stays under `max_chars` (half that for Korean, which the
    XLM-R vocabulary reads at ~1.8 characters per token against ~3.9 for English): ~220 tokens,
    so the passage survives a 256-token cut wherever it lands.
    """
    if share <= 0:
        return examples
    rng = random.Random(seed)
    pools: dict[bool, list[str]] = {True: [], False: []}
    for example in examples:
        for passage in example.positives + example.negatives:
            pools[bool(HANGUL.search(passage))].append(passage)

    def pad(passage: str, own: set[str]) -> str:
        parts = [passage]
        korean = bool(HANGUL.search(passage))
        pool, budget = pools[korean], max_chars // 2 if korean else max_chars
        for _ in range(3):
            filler = rng.choice(pool)
            if filler in own or len(" ".join(parts)) + 1 + len(filler) > budget:
                continue
            parts.insert(rng.randint(0, len(parts)), filler)
        return " ".join(parts)

    out = []
    for example in examples:
        if rng.random() >= share:
            out.append(example)
            continue
        own = set(example.positives) | set(example.negatives)
        out.append(
            Example(example.query, [pad(p, own) for p in example.positives], [pad(n, own) for n in example.negatives])
        )
    return out


def write_examples(examples: list[Example], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for e in examples:
            row = {"query": e.query, "positives": e.positives, "negatives": e.negatives}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

"""Readers for evaluation sets: every format becomes one corpus and a list of questions.

Formats (`auto` detects them from file names and the first record):
- jsonl (ours): `corpus.jsonl` of {id, text, title?} and `questions.jsonl` of
  {question, answers?: [...], gold_ids: [...]} in one folder (or the questions file, with
  `corpus.jsonl` beside it). A folder of ordinary documents with a `questions.jsonl` and no
  `corpus.jsonl` is evaluated on its files, with gold_ids as paths relative to the folder: that is how
  `rag eval docs_corpus` and your own folders work.
- squad: SQuAD v1.1 JSON (KorQuAD); each paragraph is a document, gold for its questions.
- autorag: AutoRAG's qa.parquet + corpus.parquet (retrieval_gt, generation_gt).
- clapnq: ClapNQ's answerable + unanswerable jsonl; questions alternate between the two files, so
  `--limit` keeps the mix. Unanswerable questions have no gold document.
- hotpotqa: IRCoT-processed HotpotQA jsonl; the 2 supporting paragraphs are gold, all paragraphs
  (supporting and distractors, by title) form the corpus.
- msmarco: a JSON list of {id, query, positive: [...]}; the corpus is every positive passage in the
  file. `--split eval` keeps ids divisible by 7, `train` the others.
- sec10q: docugami's SEC 10-Q set: `qna_data.csv` (Question, Source Docs, Question Type, Source
  Chunk Type, Answer) beside `docs/` (the filings as PDF). The corpus is the docs folder, ingested as
  it is; each question's `Source Docs` globs (`*AAPL*`, `*2023 Q3 AAPL*`) are expanded against its
  file names into gold_ids (paths relative to docs/). Answers are long-form; the file names they
  cite are removed from them, and their mis-decoded apostrophes ("â€™") repaired.
`--limit N` keeps the first N questions in file order (reproducible, no sampling).
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.writer import Record
from rag.errors import RagError

FORMATS = ("auto", "jsonl", "squad", "autorag", "clapnq", "hotpotqa", "msmarco", "sec10q")
SEC10Q_QUESTIONS = "qna_data.csv"
# the reference answers name their files ("(SOURCE: 2023 Q3 AAPL.pdf)", "SOURCE(S): ..." lines);
# an answer cites [n] instead, so file names would only add tokens no answer can match
_SEC10Q_SOURCES = re.compile(r"[ \t]*\(SOURCE: [^)]*\)|^[ \t]*SOURCE\(S\):[^\n]*", re.MULTILINE)

SPLITS = ("all", "eval", "train")


@dataclass
class Question:
    id: str
    question: str
    gold_ids: list[str]
    answers: list[str] = field(default_factory=list)
    answerable: bool = True


@dataclass
class EvalSet:
    name: str
    format: str
    questions: list[Question]
    records: list[Record] = field(default_factory=list)  # in-memory corpus ...
    folder: Path | None = None  # ... or a folder of files ingested as they are

    def corpus_key(self) -> str:
        """Content hash of the corpus: the evaluation index is cached under it."""
        digest = hashlib.sha256()
        if self.folder is not None:
            digest.update(str(self.folder.resolve()).encode())
        for record in self.records:
            digest.update(f"{record.id}\0{record.title}\0{record.text}\0".encode())
        return digest.hexdigest()[:16]


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def detect_format(path: Path) -> str:
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if {"qa.parquet", "corpus.parquet"} <= names:
            return "autorag"
        if SEC10Q_QUESTIONS in names and (path / "docs").is_dir():
            return "sec10q"
        if "questions.jsonl" in names:
            return "jsonl"
        if any(n.startswith("clapnq") and n.endswith(".jsonl") for n in names):
            return "clapnq"
        candidates = sorted(p for p in path.iterdir() if p.suffix in {".json", ".jsonl"})
        for candidate in candidates:
            try:
                return detect_format(candidate)
            except RagError:
                continue
        raise RagError(f"{path}: no evaluation set recognised in this folder; pass --format")
    if path.suffix == ".parquet":
        return "autorag"
    if path.name == SEC10Q_QUESTIONS and (path.parent / "docs").is_dir():
        return "sec10q"
    if path.suffix == ".json":
        with open(path, encoding="utf-8") as handle:
            head = handle.read(4096).lstrip()
        if head.startswith("{") and '"data"' in head:
            return "squad"
        if head.startswith("[") and '"query"' in head and '"positive"' in head:
            return "msmarco"
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as handle:
            first = json.loads(handle.readline())
        if "passages" in first and "input" in first:
            return "clapnq"
        if "contexts" in first and "question_text" in first:
            return "hotpotqa"
        if "question" in first:
            return "jsonl"
    raise RagError(f"{path}: format not recognised; pass --format ({', '.join(FORMATS[1:])})")


def load_jsonl(path: Path) -> EvalSet:
    folder = path if path.is_dir() else path.parent
    questions_file = folder / "questions.jsonl" if path.is_dir() else path
    rows = _jsonl(questions_file)
    questions = [
        Question(str(r.get("id", i)), r["question"], [str(g) for g in r.get("gold_ids", [])], r.get("answers", []))
        for i, r in enumerate(rows)
    ]
    corpus_file = folder / "corpus.jsonl"
    if corpus_file.exists():
        records = [Record(str(r["id"]), r["text"], r.get("title", "")) for r in _jsonl(corpus_file)]
        return EvalSet(folder.name, "jsonl", questions, records=records)
    return EvalSet(folder.name, "jsonl", questions, folder=folder.resolve())


def load_squad(path: Path) -> EvalSet:
    if path.is_dir():
        path = next(p for p in sorted(path.glob("*.json")) if detect_format(p) == "squad")
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    records, questions = [], []
    for article in data:
        for number, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}#{number}"
            records.append(Record(doc_id, paragraph["context"], article["title"]))
            for qa in paragraph["qas"]:
                answers = list(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                questions.append(Question(str(qa["id"]), qa["question"], [doc_id], answers))
    return EvalSet(path.stem, "squad", questions, records=records)


def load_autorag(path: Path) -> EvalSet:
    import pyarrow.parquet as pq

    folder = path if path.is_dir() else path.parent
    corpus = pq.read_table(folder / "corpus.parquet").to_pylist()
    records = []
    for row in corpus:
        metadata = row.get("metadata") or {}
        title = metadata.get("title", "") if isinstance(metadata, dict) else ""
        records.append(Record(str(row["doc_id"]), row["contents"], title or ""))
    questions = []
    for row in pq.read_table(folder / "qa.parquet").to_pylist():
        gold = row.get("retrieval_gt") or []
        flat = [str(g) for group in gold for g in (group if isinstance(group, list) else [group])]
        answers = row.get("generation_gt") or []
        questions.append(Question(str(row["qid"]), row["query"], list(dict.fromkeys(flat)), list(answers)))
    return EvalSet(folder.name, "autorag", questions, records=records)


def load_clapnq(path: Path) -> EvalSet:
    folder = path if path.is_dir() else path.parent
    answerable = [row for f in sorted(folder.glob("*_answerable.jsonl")) for row in _jsonl(f)]
    unanswerable = [row for f in sorted(folder.glob("*_unanswerable.jsonl")) for row in _jsonl(f)]
    records: dict[str, Record] = {}
    questions = []
    for row in itertools.chain.from_iterable(itertools.zip_longest(answerable, unanswerable)):
        if row is None:
            continue
        ids = []
        for passage in row["passages"]:
            doc_id = f"{passage['title']}#{_short_hash(passage['text'])}"
            records.setdefault(doc_id, Record(doc_id, passage["text"], passage["title"]))
            ids.append(doc_id)
        answers = [o["answer"] for o in row.get("output", []) if o.get("answer")]
        questions.append(Question(str(row["id"]), row["input"], ids if answers else [], answers, bool(answers)))
    return EvalSet("clapnq", "clapnq", questions, records=list(records.values()))


def load_hotpotqa(path: Path) -> EvalSet:
    if path.is_dir():
        path = next(p for p in sorted(path.glob("*.jsonl")) if detect_format(p) == "hotpotqa")
    records: dict[str, Record] = {}
    questions = []
    for row in _jsonl(path):
        gold = []
        for context in row["contexts"]:
            records.setdefault(context["title"], Record(context["title"], context["paragraph_text"], context["title"]))
            if context.get("is_supporting"):
                gold.append(context["title"])
        answers = [span for obj in row.get("answers_objects", []) for span in obj.get("spans", [])]
        questions.append(Question(str(row["question_id"]), row["question_text"], gold, answers))
    return EvalSet("hotpotqa", "hotpotqa", questions, records=list(records.values()))


def load_msmarco(path: Path, split: str) -> EvalSet:
    rows = json.loads(path.read_text(encoding="utf-8"))
    records: dict[str, Record] = {}
    questions = []
    for row in rows:
        ids = []
        for passage in row["positive"]:
            doc_id = _short_hash(passage)
            records.setdefault(doc_id, Record(doc_id, passage))
            ids.append(doc_id)
        in_eval = int(row["id"]) % 7 == 0
        if split == "all" or (split == "eval") == in_eval:
            questions.append(Question(str(row["id"]), row["query"], list(dict.fromkeys(ids))))
    return EvalSet(f"{path.stem}-{split}", "msmarco", questions, records=list(records.values()))


def _sec10q_answer(text: str) -> str:
    """The reference answer without its file citations; UTF-8 that was read as cp1252 ("â€™") repaired."""
    if "â€" in text:
        with contextlib.suppress(UnicodeError):
            text = text.encode("cp1252").decode("utf-8")
    return _SEC10Q_SOURCES.sub("", text).strip()


def load_sec10q(path: Path) -> EvalSet:
    """Questions from qna_data.csv, corpus = docs/ as files; `Source Docs` globs become gold paths."""
    folder = path if path.is_dir() else path.parent
    docs = (folder / "docs").resolve()
    relative = (p.relative_to(docs) for p in docs.rglob("*") if p.is_file())
    files = sorted(r.as_posix() for r in relative if not any(part.startswith(".") for part in r.parts))
    questions = []
    with open(folder / SEC10Q_QUESTIONS, encoding="utf-8-sig", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            globs = [g.strip() for g in re.split(r"[,;\n]", row["Source Docs"]) if g.strip()]
            gold = [f for f in files if any(fnmatch.fnmatchcase(f.rsplit("/", 1)[-1], g) for g in globs)]
            if not gold:
                raise ValueError(f"row {number + 2}: Source Docs {row['Source Docs']!r} matches no file in {docs}")
            answer = _sec10q_answer(row["Answer"])
            questions.append(Question(str(number), row["Question"], gold, [answer] if answer else []))
    return EvalSet(folder.name, "sec10q", questions, folder=docs)


def load_eval_set(path: Path, fmt: str = "auto", split: str = "all", limit: int | None = None) -> EvalSet:
    if not path.exists():
        raise RagError(f"{path}: no such dataset file or folder")
    if fmt not in FORMATS:
        raise RagError(f"unknown format '{fmt}': choose one of {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise RagError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if split != "all" and fmt != "msmarco":
        raise RagError(f"--split {split}: only msmarco files have train/eval splits; {fmt} is evaluation-only")
    loaders = {
        "jsonl": load_jsonl,
        "squad": load_squad,
        "autorag": load_autorag,
        "clapnq": load_clapnq,
        "hotpotqa": load_hotpotqa,
        "sec10q": load_sec10q,
    }
    try:
        dataset = load_msmarco(path, split) if fmt == "msmarco" else loaders[fmt](path)
    except (KeyError, ValueError, TypeError, StopIteration) as exc:
        raise RagError(f"{path}: not a valid {fmt} dataset ({type(exc).__name__}: {exc})") from exc
    if limit is not None:
        dataset.questions = dataset.questions[:limit]
    if not dataset.questions:
        raise RagError(f"{path}: no questions to evaluate")
    return dataset

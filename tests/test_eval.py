"""`rag eval`: every dataset format, the arms, and the three report files, on real models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.errors import RagError
from rag.eval.datasets import detect_format, load_eval_set
from rag.eval.runner import parse_arms, parse_candidates
from tests.conftest import CORPUS, SHARED

runner = CliRunner()

PASSAGES = {
    "fees": "Late fees are 100 won per day per book.",
    "hours": "The main library opens at 9 and closes at 22 on weekdays.",
    "parking": "Parking is free for the first two hours.",
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def jsonl_set(tmp_path) -> Path:
    write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v, "title": k} for k, v in PASSAGES.items()])
    write_jsonl(
        tmp_path / "questions.jsonl",
        [
            {"question": "How much is the late fee?", "answers": ["100 won"], "gold_ids": ["fees"]},
            {"question": "When does the library close?", "answers": ["22"], "gold_ids": ["hours"]},
        ],
    )
    return tmp_path


def test_jsonl_folder_and_file(jsonl_set):
    data = load_eval_set(jsonl_set)
    assert data.format == "jsonl" and len(data.records) == 3 and data.questions[0].gold_ids == ["fees"]
    assert load_eval_set(jsonl_set / "questions.jsonl").corpus_key() == data.corpus_key()


def test_document_folder_with_questions_is_evaluated_on_its_files():
    data = load_eval_set(CORPUS)
    assert data.folder == CORPUS and len(data.questions) == 28
    assert data.questions[6].gold_ids == ["en/visitor_guide_2025.pdf"]


def test_squad(tmp_path):
    squad = {
        "version": "1.1",
        "data": [
            {
                "title": "도서관",
                "paragraphs": [
                    {
                        "context": "한빛시립도서관은 1987년에 개관했다.",
                        "qas": [
                            {
                                "id": "q1",
                                "question": "언제 개관했나?",
                                "answers": [{"text": "1987년", "answer_start": 9}],
                            }
                        ],
                    },
                    {"context": "주차는 두 시간 무료이다.", "qas": []},
                ],
            }
        ],
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    data = load_eval_set(path)
    assert data.format == "squad" and [r.id for r in data.records] == ["도서관#0", "도서관#1"]
    assert data.questions[0].gold_ids == ["도서관#0"] and data.questions[0].answers == ["1987년"]


def test_autorag_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"doc_id": list(PASSAGES), "contents": list(PASSAGES.values()), "metadata": [{"title": "t"}] * 3}),
        tmp_path / "corpus.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "qid": ["a"],
                "query": ["How much is the late fee?"],
                "retrieval_gt": [[["fees"], ["hours"]]],
                "generation_gt": [["100 won"]],
            }
        ),
        tmp_path / "qa.parquet",
    )
    data = load_eval_set(tmp_path)
    assert data.format == "autorag" and data.questions[0].gold_ids == ["fees", "hours"]
    assert data.questions[0].answers == ["100 won"] and data.records[0].title == "t"


def test_clapnq_alternates_answerable_and_unanswerable(tmp_path):
    def row(i, answer):
        passage = {"title": f"T{i}", "text": f"passage {i}", "sentences": []}
        return {"id": str(i), "input": f"q{i}", "passages": [passage], "output": [{"answer": answer}]}

    write_jsonl(tmp_path / "clapnq_dev_answerable.jsonl", [row(1, "yes"), row(2, "no")])
    write_jsonl(tmp_path / "clapnq_dev_unanswerable.jsonl", [row(3, "")])
    data = load_eval_set(tmp_path, limit=2)
    assert [q.id for q in data.questions] == ["1", "3"]
    assert data.questions[1].answerable is False and data.questions[1].gold_ids == []
    assert len(data.records) == 3  # the corpus is every passage, whatever the limit


def test_hotpotqa_supporting_paragraphs_are_gold(tmp_path):
    contexts = [
        {"id": "0", "title": "A", "paragraph_text": "a", "is_supporting": True},
        {"id": "1", "title": "B", "paragraph_text": "b", "is_supporting": False},
        {"id": "2", "title": "C", "paragraph_text": "c", "is_supporting": True},
    ]
    row = {"question_id": "x", "question_text": "q?", "answers_objects": [{"spans": ["s"]}], "contexts": contexts}
    data = load_eval_set(write_jsonl(tmp_path / "dev.jsonl", [row]))
    assert data.format == "hotpotqa" and data.questions[0].gold_ids == ["A", "C"] and len(data.records) == 3


def test_msmarco_splits_by_id_mod_7(tmp_path):
    rows = [{"id": i, "query": f"q{i}", "positive": [f"p{i}"]} for i in (7, 8, 14, 15)]
    path = tmp_path / "msmarco_eng.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert [q.id for q in load_eval_set(path, split="eval").questions] == ["7", "14"]
    assert [q.id for q in load_eval_set(path, split="train").questions] == ["8", "15"]
    assert len(load_eval_set(path, split="eval").records) == 4  # corpus: every positive of the file


def test_bad_inputs_are_one_line_errors(tmp_path, jsonl_set):
    with pytest.raises(RagError, match="no such dataset"):
        load_eval_set(tmp_path / "missing")
    with pytest.raises(RagError, match="only msmarco"):
        load_eval_set(jsonl_set, split="eval")
    (tmp_path / "odd.json").write_text('{"hello": 1}')
    with pytest.raises(RagError, match="format not recognised"):
        detect_format(tmp_path / "odd.json")
    with pytest.raises(RagError, match="candidates"):
        parse_candidates("5,ten")
    with pytest.raises(RagError, match="unknown retriever 'sparse'"):
        parse_arms(["sparse"], [])
    assert parse_arms(["dense,bm25", "hybrid"], [])[0] == ["dense", "bm25", "hybrid"]


def test_arms_always_include_the_no_rerank_baseline():
    assert parse_arms(["dense"], ["a,b", "a", "none"]) == (["dense"], ["none", "a", "b"])
    assert parse_arms([], []) == (["hybrid"], ["none"])


def test_eval_writes_reports_with_rerank_deltas(tmp_path, cross_encoder_dir, monkeypatch):
    monkeypatch.setenv("RAG_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = ["eval", str(CORPUS), "--reranker", str(cross_encoder_dir), "--candidates", "3,10", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["dataset"] == "docs_corpus" and report["questions"] == 28
    runs = {(r["reranker"], r["candidates"]): r for r in report["runs"]}
    assert set(runs) == {("none", 3), ("none", 10), (str(cross_encoder_dir), 3), (str(cross_encoder_dir), 10)}
    for run in report["runs"]:
        assert all(0.0 <= v <= 1.0 for v in run["metrics"].values())
        assert {"retrieve_p50", "retrieve_p95", "rerank_p50", "rerank_p95"} <= set(run["latency_ms"])
    assert "hit@5" not in runs[("none", 3)]["metrics"] and "ndcg@10" in runs[("none", 10)]["metrics"]
    # reranking the same candidates can only reorder them: recall at the candidate count is unchanged
    assert runs[(str(cross_encoder_dir), 10)]["metrics"]["recall@10"] == runs[("none", 10)]["metrics"]["recall@10"]
    assert runs[(str(cross_encoder_dir), 10)]["latency_ms"]["rerank_p50"] > 0
    # the first document is the first chunk's, whatever the depth; hit@3 may differ (docs, not chunks)
    assert runs[("none", 10)]["metrics"]["hit@1"] == runs[("none", 3)]["metrics"]["hit@1"]
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| hybrid | none | 10 |" in markdown
    assert re.search(
        rf"\| hybrid \| {re.escape(str(cross_encoder_dir))} \| 10 \| \d\.\d{{3}} \([+-]\d\.\d{{3}}\)", markdown
    )
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    second = runner.invoke(app, ["eval", str(CORPUS), "--reranker", "none", "--candidates", "5", "--out", str(out)])
    assert second.exit_code == 0 and "hybrid" in second.output


def test_eval_generate_scores_answers_with_the_local_llm(tmp_path, jsonl_set, monkeypatch):
    from rag.llm import start_local_server

    monkeypatch.setenv("RAG_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    # the judge is any OpenAI-compatible endpoint: here the same real local model
    monkeypatch.setenv("RAG_JUDGE_BASE_URL", start_local_server(2, 4096))
    monkeypatch.setenv("RAG_JUDGE_MODEL", "SmolLM2-135M-Instruct")
    args = [
        "eval",
        str(jsonl_set),
        "--reranker",
        "none",
        "--candidates",
        "3",
        "--generate",
        "--out",
        str(tmp_path / "o"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))["runs"][0]
    generation = run["generation"]
    assert generation["answered"] == 2 and generation["llm_failures"] == 0
    assert all(0.0 <= generation[k] <= 1.0 for k in ("exact_match", "f1", "rouge_l", "judge_correct"))
    assert run["latency_ms"]["generate_p50"] > 0


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="../shared datasets not available")
@pytest.mark.parametrize(
    ("folder", "fmt"),
    [("korquad1_dev", "squad"), ("hotpotqa_dev500", "hotpotqa"), ("clapnq_dev", "clapnq")],
)
def test_shared_datasets_are_detected_and_read(folder, fmt):
    data = load_eval_set(SHARED / "datasets" / folder, limit=10)
    assert data.format == fmt and len(data.questions) == 10 and data.records
    assert all(set(q.gold_ids) <= {r.id for r in data.records} for q in data.questions)


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="../shared datasets not available")
def test_shared_msmarco_eval_split():
    data = load_eval_set(SHARED / "datasets" / "msmarco_kor" / "msmarco_kor.json", split="eval")
    assert len(data.questions) == 997 and all(int(q.id) % 7 == 0 for q in data.questions)


def test_unanswerable_questions_are_scored_by_whether_the_answer_declines(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "clap"
    folder.mkdir()

    def row(i, question, text, answer):
        passage = {"title": f"T{i}", "text": text, "sentences": []}
        return {"id": str(i), "input": question, "passages": [passage], "output": [{"answer": answer}]}

    write_jsonl(folder / "x_answerable.jsonl", [row(1, "How much is the late fee?", PASSAGES["fees"], "100 won")])
    write_jsonl(folder / "x_unanswerable.jsonl", [row(2, "Who painted the lobby mural?", PASSAGES["parking"], "")])
    out = tmp_path / "o"
    args = ["eval", str(folder), "--reranker", "none", "--candidates", "2", "--generate", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["questions"] == 2 and report["questions_with_gold"] == 1
    generation = report["runs"][0]["generation"]
    assert generation["answered"] == 1 and generation["unanswerable_declined"] in (0.0, 1.0)

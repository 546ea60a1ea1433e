"""The `rag` command as a user runs it: summaries, JSON, errors without tracebacks, chat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.generation.decline import NOT_FOUND
from tests.test_llm_faults import FaultServer

runner = CliRunner()

DOCS = {
    "fees.txt": "Late fees are 100 won per day per book. The maximum late fee is 5,000 won.",
    "hours.md": "# Opening hours\n\nThe main library opens at 9 and closes at 22 on weekdays.",
    "대출.txt": "성인은 한 번에 일곱 권까지 빌릴 수 있습니다. 대출 기간은 14일입니다.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n")
    index_dir = tmp_path_factory.mktemp("index")
    first = runner.invoke(app, ["ingest", str(folder), "--index", str(index_dir)])
    assert first.exit_code == 0, first.output
    assert "files seen 4, ingested 3, unchanged 0, skipped 1, removed 0" in first.output
    assert "photo.png: unsupported file type '.png'" in first.output
    assert "chunks added 3, removed 0, total 3" in first.output
    second = runner.invoke(app, ["ingest", str(folder), "--index", str(index_dir)])
    assert "files seen 4, ingested 0, unchanged 3" in second.output
    return index_dir


def test_ask_on_a_missing_index_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["ask", "anything?", "--index", str(tmp_path / "none"), "--json"])
    assert result.exit_code == 1
    assert "no index at" in result.output and "rag ingest" in result.output
    assert "Traceback" not in result.output


def test_ingest_of_a_missing_folder_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["ingest", str(tmp_path / "typo"), "--index", str(tmp_path / "i")])
    assert result.exit_code == 1 and "typo: no such file or folder" in result.output


def test_failing_llm_still_shows_the_sources(index, cross_encoder_dir, monkeypatch):
    server = FaultServer()
    server.mode = "500"
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("RAG_LLM_MODEL", "test-model")  # the fault server has no /v1/models
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
    try:
        args = ["ask", "How much is the late fee?", "--index", str(index), "--json"]
        result = runner.invoke(app, [*args, "--reranker", str(cross_encoder_dir), "-k", "3", "-n", "2"])
    finally:
        server.close()
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"].startswith(f"LLM at {server.url} answered HTTP 500")
    assert len(payload["sources"]) == 2
    assert all(s["rerank_score"] is not None for s in payload["sources"])
    scores = [s["rerank_score"] for s in payload["sources"]]
    assert scores == sorted(scores, reverse=True)
    assert payload["models"]["reranker"] == str(cross_encoder_dir)
    assert set(payload["timings_ms"]) == {"retrieve", "rerank", "generate"}


def test_unavailable_reranker_warns_and_answers_without_rerank(index, monkeypatch):
    server = FaultServer()
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("RAG_LLM_MODEL", "test-model")
    try:
        args = ["ask", "When does it close?", "--index", str(index), "-n", "1", "--reranker", "bge-reranker-v2-m3"]
        result = runner.invoke(app, args)
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    assert "reranker 'bge-reranker-v2-m3'" in result.output and "--reranker none" in result.output
    assert "fine [1]" in result.output and "hours.md" in result.output.replace("\n", "").replace("│", "").replace(
        " ", ""
    )


@pytest.mark.parametrize(("retriever", "embedder"), [("bm25", None), ("dense", "multilingual-e5-small")])
def test_retriever_choice_is_reported(index, monkeypatch, retriever, embedder):
    server = FaultServer()
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    try:
        args = ["ask", "성인은 몇 권까지 빌릴 수 있나요?", "--index", str(index), "--json", "--reranker", "none"]
        result = runner.invoke(app, [*args, "--retriever", retriever])
    finally:
        server.close()
    payload = json.loads(result.stdout)
    assert payload["models"]["retriever"] == retriever and payload["models"]["embedder"] == embedder
    if retriever == "bm25":
        assert [Path(s["source"]).name for s in payload["sources"]] == ["대출.txt"]  # only lexical matches


@pytest.mark.parametrize(
    ("question", "source"),
    [("How much is the late fee?", "fees.txt"), ("성인은 몇 권까지 빌릴 수 있나요?", "대출.txt")],
)
def test_bundled_reranker_works_offline_by_name_and_puts_the_answer_first(index, monkeypatch, question, source):
    server = FaultServer()  # generation fails fast: this test is about the sources
    server.mode = "500"
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("RAG_LLM_MODEL", "test-model")  # the fault server has no /v1/models
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
    try:
        args = ["ask", question, "--index", str(index), "--json", "--reranker", "rag-e5-ko-en"]
        result = runner.invoke(app, args)
    finally:
        server.close()
    payload = json.loads(result.stdout)
    assert payload["models"]["reranker"] == "rag-e5-ko-en" and not payload["warnings"]
    assert payload["sources"][0]["source"].endswith(source)
    assert all(s["rerank_score"] is not None and s["final_score"] is not None for s in payload["sources"])


def test_a_korean_question_the_documents_do_not_answer_is_declined_in_korean(index, monkeypatch):
    server = FaultServer()
    server.mode = "decline"  # what the local model did to q18 and q26: the English decline
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("RAG_LLM_MODEL", "test-model")
    try:
        question = ["ask", "주차장은 몇 대를 수용하나요?", "--index", str(index), "--reranker", "none"]
        as_json = runner.invoke(app, [*question, "--json"])
        printed = runner.invoke(app, question)
    finally:
        server.close()
    payload = json.loads(as_json.stdout)
    assert payload["answer"] == NOT_FOUND["ko"] and payload["abstained"] is True and payload["sources"]
    assert printed.stdout.startswith(NOT_FOUND["ko"]) and "가장 가까운 출처 (답은 들어 있지 않습니다)" in printed.stdout


def test_search_ranks_passages_with_no_llm_and_a_score_to_sort_by(index, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9")  # nothing listens: an LLM call would fail
    args = ["search", "성인은 몇 권까지 빌릴 수 있나요?", "--index", str(index), "--json", "-n", "2"]
    result = runner.invoke(app, [*args, "--reranker", "none"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    hits = payload["hits"]
    assert len(hits) == 2 and Path(hits[0]["source"]).name == "대출.txt" and "일곱 권" in hits[0]["text"]
    assert [h["final_score"] for h in hits] == [h["retrieval_score"] for h in hits]
    assert hits[0]["final_score"] > hits[1]["final_score"]
    assert payload["models"] == {"retriever": "hybrid", "embedder": "multilingual-e5-small", "reranker": None}


def test_search_prints_each_passage_with_its_scores_and_text(index):
    args = ["search", "How much is the late fee?", "--index", str(index), "--reranker", "rag-e5-ko-en"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[1] ") and lines[0].endswith("fees.txt")
    assert "rerank " in lines[1] and "final " in lines[1]
    assert lines[2].strip() == DOCS["fees.txt"]
    assert sum(line.startswith("[") for line in lines) == 3  # every passage of this small index


def test_search_for_nothing_is_one_clear_line(index):
    result = runner.invoke(app, ["search", "   ", "--index", str(index)])
    assert result.exit_code == 1 and "empty question" in result.output and "Traceback" not in result.output


def test_ingest_summary_keeps_an_odd_file_name_on_one_line(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "fees.txt").write_text("Late fees are 100 won per day.", encoding="utf-8")
    (folder / "scan\nof notes.xyz").write_bytes(b"data")
    result = runner.invoke(app, ["ingest", str(folder), "--index", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    assert "scan\\nof notes.xyz: unsupported file type '.xyz'" in result.output.replace("\n", "")
    assert "scan\nof" not in result.output  # a raw newline would split the entry over two lines


def test_bm25s_debug_chatter_never_reaches_the_terminal(caplog):
    """bm25s sets its own logger to DEBUG on import; with a root logger that shows DEBUG (some
    library configured it), `make demo` printed "DEBUG:bm25s:Building index from tokens"."""
    import logging

    import bm25s

    from rag.quiet import quiet_libraries

    quiet_libraries()
    caplog.set_level(logging.DEBUG)
    bm25s.BM25().index([["hanbit", "library"], ["opens", "at", "nine"]], show_progress=False)
    assert not [r for r in caplog.records if r.name.startswith("bm25s")]

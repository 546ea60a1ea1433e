"""Follow-up questions over docs_corpus (tests/data/followups.jsonl: 18, Korean and English, four of
them changing the subject): the pipeline retrieves each as asked and joined to the earlier question,
fused, and finds the document the follow-up is about."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.generation.followup import Turn, retrieval_queries
from rag.pipeline import Answer, Pipeline
from tests.conftest import ROOT, make_settings

CASES = [json.loads(line) for line in (ROOT / "tests" / "data" / "followups.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pipeline(corpus_index: Path) -> Pipeline:
    return Pipeline(make_settings(corpus_index, reranker="none"))


def _first(pipeline: Pipeline, queries: list[str]) -> str:
    return Path(pipeline.sources(queries, Answer(question=queries[0], sources=[]))[0].source).as_posix()


def test_follow_ups_find_the_document_they_are_about_even_when_they_change_the_subject(pipeline):
    fused, asked, missed = 0, 0, []
    for case in CASES:
        queries = retrieval_queries([Turn(q, a) for q, a in case["history"]], case["question"])
        assert queries[0] == case["question"] and len(queries) == 2
        found = _first(pipeline, queries).endswith(case["gold"])
        fused += found
        asked += _first(pipeline, queries[:1]).endswith(case["gold"])
        if not found:
            missed.append(case["id"])
    assert fused >= 17 and fused > asked, (fused, asked, missed)


def test_a_first_question_is_retrieved_as_asked():
    assert retrieval_queries([], "예약한 책은 며칠 동안 보관하나요?") == ["예약한 책은 며칠 동안 보관하나요?"]

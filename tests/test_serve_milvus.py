"""`rag serve` over the Milvus store (Milvus Lite through pymilvus) over real HTTP: the same hits as the
server over the local store, a cited answer from the local LLM through the openai client, and a
document uploaded, found and removed, all on Milvus.

Two servers for the module, one per store, over the session's docs_corpus indexes (`corpus_index`,
`milvus_corpus_index`), the default reranker (none) and five hits; the LLM is asked once. The Milvus
Lite server runs in this process: `rag.store.milvus.connect` keeps one client per `.db`, so the
HTTP server and the session fixture share it; the module releases it at the end, as the session
fixture does, so no later process finds the folder held.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from rag.serve.api import create_app
from tests.conftest import make_settings
from tests.test_serve import ENGLISH, _serve

SETTINGS = {"reranker": "none", "top_n": 5}  # the default reranker; the top five to compare
UPLOAD = (
    "# Bicycle repair\n\nA free bicycle repair station with a pump and tools stands by the east entrance. "
    "A volunteer mechanic is there on Thursdays from 15:00 to 18:00."
)
UPLOAD_QUERY = "When is the volunteer bicycle mechanic at the repair station?"


def _db(milvus_corpus_index: Path) -> str:
    return str(milvus_corpus_index / "milvus.db")  # RAG_MILVUS_URI's default: INDEX/milvus.db


@pytest.fixture(scope="module")
def servers(corpus_index: Path, milvus_corpus_index: Path) -> Iterator[dict[str, str]]:
    from rag.store.milvus import release

    try:
        local = create_app(make_settings(corpus_index, **SETTINGS))
        milvus = create_app(make_settings(milvus_corpus_index, store="milvus", **SETTINGS))
        with _serve(local) as local_url, _serve(milvus) as milvus_url:
            yield {"local": local_url, "milvus": milvus_url}
    finally:
        release(_db(milvus_corpus_index))


def _search(url: str, query: str) -> list[dict]:
    reply = httpx.post(f"{url}/v1/search", json={"query": query}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["hits"]


def _documents(url: str) -> list[dict]:
    return httpx.get(f"{url}/v1/documents", timeout=60).json()["documents"]


def test_search_on_milvus_returns_the_local_servers_top_five(servers, milvus_corpus_index, corpus_questions):
    """Every docs_corpus question: the same five chunks (source and text), in order, with the same scores."""
    health = httpx.get(f"{servers['milvus']}/healthz").json()
    assert health["ready"] is True and health["index"] == f"{_db(milvus_corpus_index)} (collection rag)"
    for question in corpus_questions:
        local, milvus = (_search(servers[kind], question["question"]) for kind in ("local", "milvus"))
        assert len(milvus) == 5, question["question"]
        assert [(h["source"], h["text"]) for h in milvus] == [(h["source"], h["text"]) for h in local], question
        assert [h["retrieval_score"] for h in milvus] == pytest.approx([h["retrieval_score"] for h in local], rel=1e-4)


def test_openai_client_gets_a_cited_answer_from_the_milvus_store(servers):
    client = openai.OpenAI(base_url=f"{servers['milvus']}/v1", api_key="unused", max_retries=0, timeout=300)
    completion = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": ENGLISH}])
    text = completion.choices[0].message.content
    sources = completion.model_extra["rag"]["sources"]
    assert "Yoon Seo-jin" in text
    assert Path(sources[0]["source"]).name == "history.md"
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    assert cited and all(1 <= n <= len(sources) for n in cited)
    assert "history.md" in {Path(sources[n - 1]["source"]).name for n in cited}


def test_an_upload_is_found_on_milvus_and_its_removal_is_seen(servers, milvus_corpus_index):
    url = servers["milvus"]
    before_paths = {d["path"] for d in _documents(url)}
    before_hits = _search(url, UPLOAD_QUERY)
    assert all(Path(h["source"]).name != "bicycles.md" for h in before_hits)
    added = httpx.post(f"{url}/v1/documents", params={"filename": "bicycles.md"}, content=UPLOAD.encode(), timeout=120)
    try:
        assert added.status_code == 200, added.text
        ingest = added.json()["ingest"]
        assert ingest["chunks_added"] == 1 and ingest["index_dir"] == f"{_db(milvus_corpus_index)} (collection rag)"
        doc = next(d for d in _documents(url) if d["path"].endswith("bicycles.md"))
        assert Path(doc["path"]).parent == milvus_corpus_index / "uploads"
        hits = _search(url, UPLOAD_QUERY)
        assert Path(hits[0]["source"]).name == "bicycles.md" and "Thursdays from 15:00" in hits[0]["text"]
        removed = httpx.delete(f"{url}/v1/documents/{doc['id']}", timeout=120)
        assert removed.status_code == 200 and removed.json()["ingest"]["removed"] == [doc["path"]]
    finally:  # the session's Milvus index is shared: never leave the upload in it
        for left in (d for d in _documents(url) if d["path"] not in before_paths):
            httpx.delete(f"{url}/v1/documents/{left['id']}", timeout=120)
    assert not Path(doc["path"]).exists()  # an upload belongs to the index
    after_hits = _search(url, UPLOAD_QUERY)
    assert all(Path(h["source"]).name != "bicycles.md" for h in after_hits)
    # the same index as before the upload: the same chunks, the same scores (BM25 weights recomputed)
    assert [h["chunk_id"] for h in after_hits] == [h["chunk_id"] for h in before_hits]
    scores = [h["retrieval_score"] for h in before_hits]
    assert [h["retrieval_score"] for h in after_hits] == pytest.approx(scores, rel=1e-4)
    assert {d["path"] for d in _documents(url)} == before_paths

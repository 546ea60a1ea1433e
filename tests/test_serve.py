"""`rag serve` over real HTTP: uvicorn on a free loopback port, the real models, the openai client.

One server with the local Qwen and the bundled reranker (by name; the default is none) answers the demo
questions; smaller ones (no reranker, a fault-injecting LLM endpoint) cover the API key, a
failing LLM and the busy queue.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from typer.testing import CliRunner

from rag.cli import app as cli
from rag.serve.api import create_app
from tests.conftest import make_settings
from tests.test_llm_faults import FaultServer

KOREAN = "예약한 책이 도착했다는 알림을 받으면 며칠 안에 찾아가야 하나요?"
ENGLISH = "Who was the architect behind the current Main Library building?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serve(application) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    """A real `rag eval` report (BM25 alone, no models: seconds) for the page's reports tab."""
    from tests.conftest import CORPUS

    out = tmp_path_factory.mktemp("reports") / "docs-bm25"
    args = ["eval", str(CORPUS), "--retriever", "bm25", "--reranker", "none", "--candidates", "5", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out.parent


@pytest.fixture(scope="module")
def base_url(corpus_index: Path, reports: Path) -> Iterator[str]:
    settings = make_settings(corpus_index, reranker="rag-e5-ko-en")  # the default is none: exercise one
    with _serve(create_app(settings, reports=reports)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=300)


def test_health_and_models(base_url: str, client: openai.OpenAI):
    health = httpx.get(f"{base_url}/healthz").json()
    assert health["ready"] is True and "qwen" in health["llm"].lower()
    assert [m.id for m in client.models.list()] == ["rag"]


def test_openai_client_gets_a_cited_answer_with_its_sources_and_usage(client: openai.OpenAI):
    completion = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": ENGLISH}],
        max_tokens=64,  # accepted (the server's settings decide), as are the other sampling fields
        temperature=0,
        top_p=1,
        seed=1,
        stop=["\n\n\n"],
        user="test",
        extra_body={"some_future_field": True},
    )
    text = completion.choices[0].message.content
    assert "Yoon Seo-jin" in text and "[1]" in text
    sources = completion.model_extra["rag"]["sources"]
    assert Path(sources[0]["source"]).name == "history.md" and sources[0]["rerank_score"] is not None
    assert completion.model_extra["rag"]["models"]["reranker"] == "rag-e5-ko-en"
    usage = completion.usage  # the `llm` CLI failed on its absence
    assert isinstance(usage.prompt_tokens, int) and usage.prompt_tokens > 100  # the passages are in the prompt
    assert isinstance(usage.completion_tokens, int) and 0 < usage.completion_tokens <= 256
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert "usage_estimated" not in completion.model_extra["rag"]  # the engine counted them


def test_streamed_tokens_arrive_as_written_and_usage_comes_last(client: openai.OpenAI):
    """The same question (the LLM's prompt cache makes it quick), streamed: a one-sentence answer
    used to arrive in one piece at the end, held by the repetition guard until its sentence ended."""
    started = time.perf_counter()
    arrivals, chunks = [], []
    stream = client.chat.completions.create(
        model="rag",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": ENGLISH}],
    )
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.perf_counter() - started, chunk.choices[0].delta.content))
    assert len(arrivals) > 3, arrivals  # token by token, not one block
    assert "Yoon Seo-jin" in "".join(piece for _, piece in arrivals)
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert Path(finish.model_extra["rag"]["sources"][0]["source"]).name == "history.md"
    timings = finish.model_extra["rag"]["timings_ms"]
    writing = (timings["generate"] - timings["first_token"]) / 1000  # from the model's first token to its last
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread >= 0.3 * writing, (spread, writing, arrivals)  # they reached the client as written, not all at once
    last = chunks[-1]
    assert last.choices == [] and last.usage.prompt_tokens > 100 and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_korean_answer_arrives_in_pieces_then_the_sources(client: openai.OpenAI):
    stream = client.chat.completions.create(
        model="rag",
        stream=True,
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": KOREAN}],
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # token by token as the guards pass them, not one block at the end
    assert "3일" in "".join(pieces)
    final = chunks[-1]  # no usage chunk unless stream_options.include_usage asks for it
    assert final.choices[0].finish_reason == "stop" and final.usage is None
    assert Path(final.model_extra["rag"]["sources"][0]["source"]).name == "holds.txt"


def test_a_follow_up_is_retrieved_with_the_question_before_it(client: openai.OpenAI):
    earlier = "예약한 책이 도착했다는 알림을 받으면 며칠 안에 찾아가야 하나요?"
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": earlier},
        {"role": "assistant", "content": "알림을 받은 날부터 3일 안에 찾아가야 합니다. [1]"},
        {"role": "user", "content": "그 안에 못 찾아가면 어떻게 되나요?"},
    ]
    reply = client.chat.completions.create(model="rag", messages=messages, max_tokens=8)
    rag = reply.model_extra["rag"]
    assert rag["question"] == "그 안에 못 찾아가면 어떻게 되나요?"
    assert rag["retrieval_queries"] == [rag["question"], f"{earlier} {rag['question']}"]
    assert Path(rag["sources"][0]["source"]).name == "holds.txt"


def test_search_returns_ranked_hits_without_the_llm(base_url: str):
    reply = httpx.post(f"{base_url}/v1/search", json={"query": KOREAN, "top_n": 2}, timeout=60)
    assert reply.status_code == 200
    hits = reply.json()["hits"]
    assert len(hits) == 2 and Path(hits[0]["source"]).name == "holds.txt"
    assert hits[0]["final_score"] >= hits[1]["final_score"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/search", {"query": "  "}, 400, "query is empty"),
        ("/v1/search", {"q": "x"}, 400, "query: Field required"),
        ("/v1/chat/completions", {"messages": [{"role": "system", "content": "hi"}]}, 400, "no user message"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": " "}]},
            400,
            "question (last user message) is empty",
        ),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 5000}]}, 400, "the limit is 4000"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n: Input should be"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "stream_options": 1},
            400,
            "stream_options",
        ),
    ],
)
def test_bad_requests_get_a_one_line_4xx(base_url: str, path: str, body: dict, status: int, message: str):
    reply = httpx.post(f"{base_url}{path}", json=body, timeout=30)
    assert reply.status_code == status
    error = reply.json()["error"]["message"]
    assert message in error and "\n" not in error


def test_usage_counts_missing_from_the_engine_are_estimated_and_named():
    from rag.pipeline import Answer
    from rag.serve.api import _usage

    answer = Answer(question="How late is it open?", sources=[], answer="Until 20:00 [1].")
    answer.usage = {"prompt_tokens": 900, "completion_tokens": None}  # an engine that could not count its output
    usage, estimated = _usage(answer)
    assert usage["prompt_tokens"] == 900 and usage["completion_tokens"] > 0 and estimated == ["completion_tokens"]
    assert usage["total_tokens"] == 900 + usage["completion_tokens"]
    answer.usage = {}
    usage, estimated = _usage(answer)
    assert usage["prompt_tokens"] > 0 and estimated == ["prompt_tokens", "completion_tokens"]


def test_an_oversized_request_is_refused_before_it_is_read(base_url: str):
    reply = httpx.post(f"{base_url}/v1/search", content=b"{" + b" " * 1_100_000 + b"}", timeout=30,
                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert reply.status_code == 413 and "limit is 1,000,000" in reply.json()["error"]["message"]


@pytest.fixture(scope="module")
def fault() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.close()


def _fault_app(index: Path, fault: FaultServer, **kwargs):
    endpoint = {"RAG_LLM_BASE_URL": fault.url, "RAG_LLM_API_KEY": "k"}  # the fields are set by these names
    quick = {"llm_timeout": 10, "llm_max_retries": 0}
    settings = make_settings(index, reranker="none", llm_model="test-model", **quick, **endpoint)
    return create_app(settings, **kwargs)


def test_api_key_is_required_and_compared(corpus_index: Path, fault: FaultServer):
    with _serve(_fault_app(corpus_index, fault, api_key="s3cret")) as url:
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes need no key
        keyed = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert [m.id for m in keyed.models.list()] == ["rag"]


def test_a_failing_llm_gives_a_clear_error_and_still_the_sources(corpus_index: Path, fault: FaultServer):
    fault.mode = "500"
    with _serve(_fault_app(corpus_index, fault)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="rag", messages=[{"role": "user", "content": ENGLISH}])
        assert caught.value.status_code == 502 and "backend exploded" in caught.value.message
        assert Path(caught.value.response.json()["rag"]["sources"][0]["source"]).name == "history.md"
        stream = client.chat.completions.create(
            model="rag", stream=True, messages=[{"role": "user", "content": ENGLISH}]
        )
        chunks = list(stream)
        assert Path(chunks[-1].model_extra["rag"]["sources"][0]["source"]).name == "history.md"
        assert "backend exploded" in chunks[-1].model_extra["rag"]["error"]


def test_a_full_queue_answers_429_and_the_server_keeps_serving(corpus_index: Path, fault: FaultServer):
    fault.mode = "timeout"  # each answer holds the LLM for 2 s
    with _serve(_fault_app(corpus_index, fault, max_waiting=0)) as url:
        body = {"messages": [{"role": "user", "content": ENGLISH}]}
        with ThreadPoolExecutor(3) as pool:
            posts = [pool.submit(httpx.post, f"{url}/v1/chat/completions", json=body, timeout=30) for _ in range(3)]
            replies = [post.result() for post in posts]
        codes = sorted(r.status_code for r in replies)
        assert 429 in codes and any(code != 429 for code in codes), codes  # one answered (here: 502), others refused
        busy = next(r for r in replies if r.status_code == 429)
        assert "retry later" in busy.json()["error"]["message"]
        assert httpx.post(f"{url}/v1/search", json={"query": ENGLISH}, timeout=30).status_code == 200


def test_serving_beyond_loopback_needs_an_api_key(corpus_index: Path, monkeypatch):
    monkeypatch.delenv("RAG_SERVE_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--index", str(corpus_index), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "set RAG_SERVE_API_KEY" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A server of its own (the local LLM, no reranker) over a small index the tests change."""
    from ingest.writer import IndexWriter

    docs = tmp_path_factory.mktemp("library")
    (docs / "fees.txt").write_text("Late fees are 100 won per day per book.", encoding="utf-8")
    (docs / "extra").mkdir()
    (docs / "extra" / "wifi.md").write_text("# Wi-Fi\n\nThe Wi-Fi password is printed on the desk.", encoding="utf-8")
    index = tmp_path_factory.mktemp("library-index")
    settings = make_settings(index, reranker="none")
    IndexWriter(settings).ingest([docs / "fees.txt"])
    with _serve(create_app(settings, allowed_roots=(docs / "extra",))) as url:
        yield url, docs


def _names(url: str) -> set[str]:
    return {Path(d["path"]).name for d in httpx.get(f"{url}/v1/documents").json()["documents"]}


def test_an_uploaded_document_answers_the_next_question_and_its_removal_is_seen(library):
    url, _ = library
    note = "# Parking\n\nThe library car park is on the second basement floor and is free for two hours."
    added = httpx.post(f"{url}/v1/documents", params={"filename": "parking.md"}, content=note.encode(), timeout=120)
    assert added.status_code == 200, added.text
    assert added.json()["ingest"]["chunks_added"] == 1 and _names(url) == {"fees.txt", "parking.md"}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300)
    question = [{"role": "user", "content": "Where is the car park and how long is it free?"}]
    reply = client.chat.completions.create(model="rag", messages=question)
    assert "two hours" in reply.choices[0].message.content or "2 hours" in reply.choices[0].message.content
    assert Path(reply.model_extra["rag"]["sources"][0]["source"]).name == "parking.md"
    doc = next(d for d in httpx.get(f"{url}/v1/documents").json()["documents"] if d["path"].endswith("parking.md"))
    removed = httpx.delete(f"{url}/v1/documents/{doc['id']}", timeout=120)
    assert removed.status_code == 200 and removed.json()["ingest"]["removed"] == [doc["path"]]
    assert not Path(doc["path"]).exists()  # an upload belongs to the index
    hits = httpx.post(f"{url}/v1/search", json={"query": "car park basement"}, timeout=60).json()["hits"]
    assert all(Path(h["source"]).name != "parking.md" for h in hits) and _names(url) == {"fees.txt"}
    scores = [h["final_score"] for h in hits]  # no reranker here: the retrieval score, to sort by
    assert hits and scores == [h["retrieval_score"] for h in hits] == sorted(scores, reverse=True)


def test_a_server_side_path_must_be_under_an_allowed_root(library):
    url, docs = library
    outside = httpx.post(f"{url}/v1/documents", json={"path": str(docs / "fees.txt")}, timeout=60)
    assert outside.status_code == 403 and "not under an allowed root" in outside.json()["error"]["message"]
    sneaky = httpx.post(f"{url}/v1/documents", json={"path": str(docs / "extra" / ".." / "fees.txt")}, timeout=60)
    assert sneaky.status_code == 403
    inside = httpx.post(f"{url}/v1/documents", json={"path": str(docs / "extra")}, timeout=120)
    assert inside.status_code == 200 and "wifi.md" in _names(url)
    doc = next(d for d in httpx.get(f"{url}/v1/documents").json()["documents"] if d["path"].endswith("wifi.md"))
    assert httpx.delete(f"{url}/v1/documents/{doc['id']}", timeout=120).status_code == 200
    assert (docs / "extra" / "wifi.md").exists()  # the operator's file stays; only the index forgets it


def test_an_uploaded_hwp_is_searchable_and_a_locked_one_refused_with_its_reason(library):
    url, _ = library
    hwp = Path(__file__).parent / "data" / "hwp"
    added = httpx.post(
        f"{url}/v1/documents", params={"filename": "noori.hwp"}, content=(hwp / "noori.hwp").read_bytes(), timeout=120
    )
    assert added.status_code == 200, added.text
    assert added.json()["ingest"]["chunks_added"] >= 2
    hits = httpx.post(f"{url}/v1/search", json={"query": "한국형발사체 누리호의 총 길이"}, timeout=60).json()["hits"]
    assert Path(hits[0]["source"]).name == "noori.hwp" and "47.2 m" in " ".join(h["text"] for h in hits)
    locked = httpx.post(
        f"{url}/v1/documents",
        params={"filename": "locked.hwpx"},
        content=(hwp / "password-12345.hwpx").read_bytes(),
        timeout=120,
    )
    assert locked.status_code == 422 and "password-protected HWPX" in locked.json()["error"]["message"]
    doc = next(d for d in httpx.get(f"{url}/v1/documents").json()["documents"] if d["path"].endswith("noori.hwp"))
    assert httpx.delete(f"{url}/v1/documents/{doc['id']}", timeout=120).status_code == 200


def test_a_running_server_answers_from_what_a_watched_folder_just_became(library, tmp_path: Path):
    """`rag ingest FOLDER --watch` beside `rag serve` on the same index: the server's next search
    after a change has it, with no restart."""
    from tests.test_watch import Watcher

    url, _ = library
    index = Path(httpx.get(f"{url}/healthz").json()["index"])
    folder = tmp_path / "shared-drive"
    folder.mkdir()
    (folder / "rooms.md").write_text("# Rooms\n\nGroup study rooms can be booked a week ahead.", encoding="utf-8")
    watcher = Watcher(folder, index, embedder=None)  # the index's own embedder
    try:
        watcher.wait_for("start", lambda: any("watching 1 folder" in line for line in watcher.lines))

        def top(query: str) -> str:
            hits = httpx.post(f"{url}/v1/search", json={"query": query}, timeout=60).json()["hits"]
            return Path(hits[0]["source"]).name if hits else ""

        assert top("book a group study room") == "rooms.md"
        (folder / "lockers.md").write_text("# Lockers\n\nLockers on floor 3 cost 500 won a day.", encoding="utf-8")
        watcher.wait_for("the server to see lockers.md", lambda: top("How much does a locker cost?") == "lockers.md")
        (folder / "rooms.md").unlink()
        watcher.wait_for("the server to drop rooms.md", lambda: "rooms.md" not in _names(url))
    finally:
        watcher.process.terminate()
        assert watcher.process.wait(timeout=60) == 0, watcher.lines


@pytest.mark.parametrize(
    ("params", "body", "status", "message"),
    [
        ({"filename": "photo.png"}, b"\x89PNG", 415, "unsupported file type '.png'"),
        ({"filename": "../../etc/x.md"}, b"# x", 200, ""),  # the name only: saved as uploads/x.md
        ({"filename": ".hidden.md"}, b"# x", 400, "plain file name"),
        ({"filename": "empty.md"}, b"", 422, "empty.md: empty file"),
        ({}, b"not json", 400, "?filename=NAME"),
    ],
)
def test_bad_uploads_get_a_one_line_4xx(library, params, body, status, message):
    url, _ = library
    reply = httpx.post(f"{url}/v1/documents", params=params, content=body, timeout=60)
    assert reply.status_code == status, reply.text
    if status == 200:
        assert all(Path(d["path"]).parent.name == "uploads" for d in reply.json()["documents"] if "x.md" in d["path"])
        doc = next(d for d in reply.json()["documents"] if d["path"].endswith("x.md"))
        httpx.delete(f"{url}/v1/documents/{doc['id']}", timeout=60)
    else:
        assert message in reply.json()["error"]["message"]


def test_unknown_document_and_a_second_writer(library):
    from rag.store.local import writer_lock

    url, _ = library
    missing = httpx.delete(f"{url}/v1/documents/0123456789abcdef")
    assert missing.status_code == 404 and "GET /v1/documents" in missing.json()["error"]["message"]
    index = Path(httpx.get(f"{url}/healthz").json()["index"])
    with writer_lock(index):  # a `rag ingest` holds the index
        busy = httpx.post(f"{url}/v1/documents", params={"filename": "a.md"}, content=b"# A\n\nText.", timeout=60)
    assert busy.status_code == 409 and "another ingest" in busy.json()["error"]["message"]


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (no browser download: the executable path is given)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_page_streams_a_korean_answer_and_opens_its_citation(base_url: str, browser, tmp_path: Path):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(base_url)
    page.fill("#question", KOREAN)
    page.click("#ask-button")
    page.wait_for_selector("#sources li", timeout=300_000)  # the last SSE chunk carries the sources
    assert "3일" in page.inner_text("#answer")
    assert "holds.txt" in page.inner_text("#sources li:first-child")
    page.click("#answer .cite[data-source='1']")
    assert page.is_visible("#passage")
    assert "holds.txt" in page.inner_text("#passage-meta") and "rerank" in page.inner_text("#passage-meta")
    marked = page.eval_on_selector_all("#passage-text mark", "nodes => nodes.map(n => n.textContent)")
    assert "알림" in marked  # the question's words are marked in the passage
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    page.close()


def test_the_page_lists_documents_and_shows_an_eval_report(base_url: str, browser):
    page = browser.new_page()
    page.goto(base_url)
    page.click("button[data-tab='documents']")
    page.wait_for_selector("#document-table tbody tr")
    cells = "#document-table tbody tr td:first-child"
    paths = page.eval_on_selector_all(cells, "cells => cells.map(c => c.textContent)")
    assert any(p.endswith("holds.txt") for p in paths) and len(paths) >= 20
    page.click("button[data-tab='reports']")
    page.click("#report-list li:first-child")
    page.wait_for_selector("#report-view img")
    assert "bm25" in page.inner_text("#report-view pre")
    page.close()


def test_the_page_adds_and_removes_a_document(library, browser, tmp_path: Path):
    url, _ = library
    upload = tmp_path / "opening.md"
    upload.write_text("# Opening\n\nThe reading room opens at 7 on Saturdays.", encoding="utf-8")
    page = browser.new_page()
    page.goto(url)
    page.click("button[data-tab='documents']")
    offered = set(page.get_attribute("#upload-file", "accept").split(","))
    assert {".hwp", ".hwpx", ".xlsx", ".csv", ".pptx", ".docx", ".pdf"} <= offered
    page.set_input_files("#upload-file", str(upload))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#document-table tbody tr:has-text('opening.md')", timeout=120_000)
    assert "ingested 1" in page.inner_text("#ingest-summary")
    page.click("#document-table tbody tr:has-text('opening.md') button")
    page.wait_for_selector("#document-table tbody tr:has-text('opening.md')", state="detached", timeout=120_000)
    assert "removed 1" in page.inner_text("#ingest-summary")
    page.close()


def test_questions_use_the_old_generation_while_an_ingest_runs_then_the_new_one(library, tmp_path: Path):
    """An ingest by another process (here: the real writer in a thread, paused mid-way by its progress
    hook) does not stop the server answering; its documents count from the first request after the commit."""
    from ingest.writer import IndexWriter

    url, _ = library
    index = Path(httpx.get(f"{url}/healthz").json()["index"])
    (tmp_path / "bikes.md").write_text("# Bicycles\n\nBicycle racks stand by the east entrance.", encoding="utf-8")
    embedding, release = threading.Event(), threading.Event()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "embedding":
            embedding.set()
            release.wait(60)

    writer = threading.Thread(target=IndexWriter(make_settings(index), progress).ingest, args=([tmp_path],))
    writer.start()
    try:
        assert embedding.wait(60)
        during = httpx.post(f"{url}/v1/search", json={"query": "bicycle racks east entrance"}, timeout=60)
        assert during.status_code == 200
        assert all(Path(h["source"]).name != "bikes.md" for h in during.json()["hits"])
    finally:
        release.set()
        writer.join(60)
    after = httpx.post(f"{url}/v1/search", json={"query": "bicycle racks east entrance"}, timeout=60).json()
    assert Path(after["hits"][0]["source"]).name == "bikes.md"
    doc = next(d for d in httpx.get(f"{url}/v1/documents").json()["documents"] if d["path"].endswith("bikes.md"))
    assert httpx.delete(f"{url}/v1/documents/{doc['id']}", timeout=60).status_code == 200  # as the other tests expect


def test_an_upload_over_the_file_size_limit_is_refused_before_it_is_read(library):
    url, _ = library
    big = b"a" * (50 * 2**20 + 1)  # RAG_MAX_FILE_MB defaults to 50
    reply = httpx.post(f"{url}/v1/documents", params={"filename": "big.txt"}, content=big, timeout=60)
    assert reply.status_code == 413 and "limit is 52,428,800" in reply.json()["error"]["message"]
    assert "big.txt" not in _names(url)
    chunked = httpx.post(f"{url}/v1/documents", params={"filename": "big.txt"}, content=iter([big]), timeout=60)
    assert chunked.status_code == 413 and "the limit is 52,428,800" in chunked.json()["error"]["message"]

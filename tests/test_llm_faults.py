"""LLM error paths against a fault-injecting local HTTP server (the only fake in the suite)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.generation import generate_answer
from rag.llm import LLM, Endpoint, LLMError, resolve_endpoint
from rag.settings import Settings
from tests.test_generation import hit

MESSAGES = [{"role": "user", "content": "hi"}]


class FaultServer:
    """Answers /v1/chat/completions according to `mode`; counts the requests it received."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                outer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.respond(self)

            def do_GET(self):  # /v1/models
                ids = {"one-model": ["only-model"], "many-models": [f"model-{i}" for i in range(9)]}.get(outer.mode, [])
                body = json.dumps({"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}).encode()
                self.send_response(200 if ids else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, h: BaseHTTPRequestHandler) -> None:
        def send(status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None):
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(body)

        error = json.dumps({"error": {"message": "backend exploded", "type": "server_error"}}).encode()
        if self.mode == "timeout":
            time.sleep(2)
            send(200, b"{}")
        elif self.mode == "500":
            send(500, error)
        elif self.mode == "429":
            send(429, error, headers={"Retry-After": "0"})
        elif self.mode == "garbage":
            send(200, b"data: {this is not json\n\n", "text/event-stream")
        elif self.mode == "html":
            send(200, b"<html>proxy login page</html>", "text/html")
        elif self.mode == "empty":
            send(200, b"data: [DONE]\n\n", "text/event-stream")
        elif self.mode == "decline":  # the English decline, in pieces, whatever the question's language
            events = [self.chunk(piece) for piece in ("The documents", " do not", " contain the answer.")]
            send(200, "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode() + b"data: [DONE]\n\n",
                 "text/event-stream")  # fmt: skip
        elif self.mode == "loop":  # a model stuck repeating itself, 400 times
            events = [self.chunk("It opens at 9 [1]. ")] + [self.chunk("Who opens it? ")] * 400
            send(200, "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode() + b"data: [DONE]\n\n",
                 "text/event-stream")  # fmt: skip
        else:
            send(200, f"data: {json.dumps(self.chunk('fine [1]'))}\n\ndata: [DONE]\n\n".encode(), "text/event-stream")

    @staticmethod
    def chunk(content: str) -> dict:
        return {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}  # fmt: skip

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def server():
    fault = FaultServer()
    yield fault
    fault.close()


def llm(url: str, retries: int = 0, timeout: float = 0.5) -> LLM:
    settings = Settings(llm_timeout=timeout, llm_max_retries=retries)
    return LLM(Endpoint(url, "key", "test-model", local=False), settings)


def answer(client: LLM) -> str:
    return "".join(client.stream(MESSAGES))


def test_healthy_server_streams(server):
    server.mode = "ok"
    assert answer(llm(server.url)) == "fine [1]"


def test_timeout_is_bounded_and_explained(server):
    server.mode = "timeout"
    started = time.perf_counter()
    with pytest.raises(LLMError, match=r"timed out after 0.5 s .*RAG_LLM_TIMEOUT"):
        answer(llm(server.url, retries=0, timeout=0.5))
    assert time.perf_counter() - started < 1.9  # gave up before the server answered


def test_server_error_is_retried_a_bounded_number_of_times(server):
    server.mode, server.requests = "500", 0
    with pytest.raises(LLMError, match="HTTP 500: backend exploded"):
        answer(llm(server.url, retries=2))
    assert server.requests == 3


def test_rate_limit_names_the_cause(server):
    server.mode, server.requests = "429", 0
    with pytest.raises(LLMError, match=r"rate limiting \(HTTP 429\) after 1 retries"):
        answer(llm(server.url, retries=1))
    assert server.requests == 2


@pytest.mark.parametrize("mode", ["garbage", "html"])
def test_malformed_body_is_reported(server, mode):
    server.mode = mode
    with pytest.raises(LLMError, match=r"malformed|empty answer"):
        answer(llm(server.url))


def test_empty_answer_is_an_error(server):
    server.mode = "empty"
    with pytest.raises(LLMError, match="empty answer"):
        answer(llm(server.url))


def test_connection_refused_says_where():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LLMError, match=f"cannot reach the LLM at {url}"):
        answer(llm(url))


def test_an_endpoint_with_one_model_is_used_without_naming_it(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    server.mode = "one-model"
    endpoint = resolve_endpoint(Settings())
    assert endpoint.model == "only-model" and not endpoint.local


def test_an_endpoint_with_many_models_asks_which_one(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    server.mode = "many-models"
    with pytest.raises(LLMError, match=r"serves 9 models \(model-0, .*…\): set RAG_LLM_MODEL"):
        resolve_endpoint(Settings())
    server.mode = "500"  # /v1/models answers 404
    with pytest.raises(LLMError, match=r"did not answer .*set RAG_LLM_MODEL"):
        resolve_endpoint(Settings())
    assert resolve_endpoint(Settings(llm_model="named")).model == "named"


def test_a_looping_model_is_stopped_and_its_answer_kept_once(server):
    server.mode = "loop"
    shown: list[str] = []
    client = llm(server.url)
    generated = generate_answer(client, client.settings, "When does it open?", [hit(1, "Opens at 9.")], shown.append)
    assert generated.text == "It opens at 9 [1]. Who opens it?" == "".join(shown).strip()
    assert generated.repetition_stopped and "repeating itself" in generated.warnings[0]
    assert generated.cited == [1]

"""The HTTP API of `rag serve`: one warm process, OpenAI-compatible chat grounded in the index.

FastAPI because it gives request validation, an OpenAPI page at `/docs` and streaming responses
with little code, and uvicorn runs it in-process (tests start it on a free loopback port).

- `POST /v1/chat/completions`: the last user message is the question; the answer cites [n]; the
  sources travel in the extra field `rag` (of the response, or of the SSE chunk with the
  `finish_reason` when `stream` is true). `usage` counts the tokens (in the last SSE chunk, with
  empty `choices`, when `stream_options.include_usage` is true), as OpenAI's clients, the `llm`
  CLI and LangChain's `ChatOpenAI` expect. Tokens stream as the model writes them. Any OpenAI
  client works unchanged.
- `POST /v1/search`: retrieve + rerank, no LLM: hits with their scores, for programs.
- `GET /v1/documents`, `POST /v1/documents` (the file as the body, `?filename=notes.md`; or JSON
  `{"path": ...}` under a root allowed at start-up), `DELETE /v1/documents/{id}`: through the
  locked ingest (`rag.serve.documents`); questions keep being answered from the previous index
  generation while one runs and switch to the new one when it commits.
- `GET /v1/reports`, `GET /v1/reports/{name}/{report.json|report.md|plot.png}`: the `rag eval`
  reports found under `--reports DIR`.
- `GET /`: the web page (`rag/serve/page/`: plain HTML, CSS and JavaScript, no build step, no CDN).
- `GET /v1/models`, `GET /healthz`.

One local LLM answers one question at a time: generations take turns behind a lock, at most
`max_waiting` requests wait for it, and a request beyond that gets 429 at once, never a crash.
Search does not wait for the LLM. Bad input is a 4xx with a one-line message in OpenAI's error
shape (`{"error": {"message", "type"}}`).
"""

from __future__ import annotations

import hmac
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from rag.errors import RagError
from rag.generation.budget import estimate_tokens
from rag.generation.followup import Turn
from rag.pipeline import Answer, Pipeline
from rag.serve.documents import ACCEPT, DocumentError, Documents
from rag.settings import Settings
from rag.store import IndexBusy

MODEL_ID = "rag"  # what /v1/models lists and clients name; the LLM behind it is in each answer's `rag.models`
MAX_BODY = 1_000_000  # bytes of a JSON request
MAX_QUESTION = 4_000  # characters


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class Message(BaseModel):
    role: str
    content: str | list[dict] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's request body. `max_tokens` (or `max_completion_tokens`) caps the answer below the
    server's RAG_LLM_MAX_TOKENS, never above it. The other sampling fields (`temperature`, `top_p`,
    `stop`, `seed`, ...) are accepted and ignored: the server's settings decide them, since answers
    are checked and cached under them.
    Unknown fields are ignored too; only `n` above 1 is refused, as one answer is all there is."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class SearchRequest(BaseModel):
    query: str
    top_n: int | None = Field(default=None, ge=1, le=50)


class Busy:
    """One generation at a time; at most `max_waiting` queued behind it."""

    def __init__(self, max_waiting: int) -> None:
        self.lock = threading.Lock()
        self.max_waiting = max_waiting
        self.waiting = 0
        self._count = threading.Lock()

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._count:
            if self.waiting > self.max_waiting:  # one answering, max_waiting behind it
                message = f"busy: {self.waiting} questions are with the LLM or waiting for it; retry later"
                raise ApiError(429, message, "rate_limit")
            self.waiting += 1
        try:
            with self.lock:
                yield
        finally:
            with self._count:
                self.waiting -= 1


def _text(message: Message) -> str:
    content = message.content
    if isinstance(content, list):  # OpenAI's content parts: keep the text ones
        content = " ".join(part.get("text", "") for part in content if part.get("type") == "text")
    return (content or "").strip()


def _history(request: ChatRequest) -> list[Turn]:
    """The conversation before the last user message, as question/answer turns (a question with no
    answer yet keeps an empty one): a follow-up is rewritten from it before retrieval."""
    turns: list[Turn] = []
    last_user = max(i for i, m in enumerate(request.messages) if m.role == "user")
    for message in request.messages[:last_user]:
        if message.role == "user":
            turns.append(Turn(_text(message), ""))
        elif message.role == "assistant" and turns and not turns[-1].answer:
            turns[-1] = Turn(turns[-1].question, _text(message))
    return [turn for turn in turns if turn.question]


def _question(request: ChatRequest) -> str:
    users = [m for m in request.messages if m.role == "user"]
    if not users:
        raise ApiError(400, "messages: no user message; the last user message is the question")
    question = _text(users[-1])
    if not question:
        raise ApiError(400, "the question (last user message) is empty")
    if len(question) > MAX_QUESTION:
        raise ApiError(400, f"the question is {len(question)} characters; the limit is {MAX_QUESTION}")
    return question


def _usage(answer: Answer) -> tuple[dict, list[str]]:
    """OpenAI's `usage` from the engine's counts (`Answer.usage`), and the names of any counts
    that had to be estimated instead."""
    counted = getattr(answer, "usage", None) or {}
    prompt, completion = counted.get("prompt_tokens"), counted.get("completion_tokens")
    estimated = []
    # Fallback only where the engine could not count (or before it reports counts at all): a rough
    # estimate from the text (estimate_tokens: about 2 tokens per Hangul syllable, 1 per 3 other
    # characters; the prompt's template and instructions are not included), never a silent 0. The
    # `rag` field's `usage_estimated` names the counts that are estimates.
    if prompt is None:
        prompt = estimate_tokens(answer.question + "\n".join(hit.chunk.text for hit in answer.sources))
        estimated.append("prompt_tokens")
    if completion is None:
        completion = estimate_tokens(answer.answer) if answer.answer else 0
        estimated.append("completion_tokens")
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return usage, estimated


def _extra(answer: Answer, estimated: list[str] | None = None) -> dict:
    """The `rag` field: everything `rag ask --json` gives besides the answer text."""
    extra = {k: v for k, v in answer.as_dict().items() if k != "answer"}
    if estimated:
        extra["usage_estimated"] = estimated
    return extra


def create_app(
    settings: Settings,
    api_key: str | None = None,
    max_waiting: int = 4,
    allowed_roots: tuple[Path, ...] = (),
    reports: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> FastAPI:
    """Load the models (embedder, Kiwi, reranker, LLM) and write one token now, so the first
    question is warm."""
    pipeline = Pipeline(settings, log=log)
    pipeline.warm()
    pipeline.warm_llm()
    documents = Documents(settings, tuple(Path(r).resolve() for r in allowed_roots))
    llm_model = pipeline.llm.model
    busy = Busy(max_waiting)
    app = FastAPI(title="rag", summary="Answers grounded in your documents, with numbered sources.")
    state = {"ready": True, "index": pipeline.store.location, "llm": llm_model}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        if api_key and path not in ("/", "/healthz") and not path.startswith("/page/"):  # the page asks for the key
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error(ApiError(401, "missing or wrong API key: send Authorization: Bearer <RAG_SERVE_API_KEY>"))
        length = request.headers.get("content-length")
        limit = settings.max_file_mb * 2**20 if request.url.path == "/v1/documents" else MAX_BODY
        if length and length.isdigit() and int(length) > limit:
            return _error(ApiError(413, f"request body of {int(length):,} bytes; the limit is {int(limit):,}"))
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return _error(exc)

    @app.exception_handler(DocumentError)
    async def document_error(_: Request, exc: DocumentError):
        return _error(ApiError(exc.status, str(exc)))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return _error(ApiError(400, f"{where or 'body'}: {first['msg']}"))

    app.mount("/page", StaticFiles(directory=PAGE), name="page")

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        # the upload field offers exactly the types ingest reads (ingest.loaders.LOADERS)
        return HTMLResponse((PAGE / "index.html").read_text(encoding="utf-8").replace("{{ACCEPT}}", ACCEPT))

    @app.get("/v1/reports")
    def list_reports() -> dict:
        return {"reports": find_reports(reports)}

    @app.get("/v1/reports/{name}/{file}")
    def report_file(name: str, file: str) -> FileResponse:
        found = {r["name"]: r for r in find_reports(reports)}
        if name not in found or file not in REPORT_FILES:
            raise ApiError(404, f"no report file {name}/{file}: GET /v1/reports lists them")
        path = Path(found[name]["folder"]) / file
        if not path.is_file():
            raise ApiError(404, f"report {name} has no {file}")
        return FileResponse(path)

    @app.get("/healthz")
    def healthz() -> dict:
        return state

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "rag", "llm": llm_model}]}

    @app.get("/v1/documents")
    def list_documents() -> dict:
        return {"documents": documents.list()}

    @app.post("/v1/documents")
    async def add_document(request: Request, filename: str | None = None) -> dict:
        data = await _read_capped(request, int(settings.max_file_mb * 2**20))
        if filename is None:  # JSON {"path": ...}
            try:
                path = json.loads(data or b"{}")["path"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, 'give the file as the body with ?filename=NAME, or JSON {"path": ...}') from None
            report = await run_in_threadpool(_writing, documents.add_path, str(path))
        else:
            report = await run_in_threadpool(_writing, documents.add_upload, filename, data)
        pipeline.refresh()
        return {"ingest": report, "documents": documents.list()}

    @app.delete("/v1/documents/{doc_id}")
    def remove_document(doc_id: str) -> dict:
        report = _writing(documents.remove, doc_id)
        pipeline.refresh()
        return {"ingest": report, "documents": documents.list()}

    @app.post("/v1/search")
    def search(body: SearchRequest) -> dict:
        query = body.query.strip()
        if not query:
            raise ApiError(400, "query is empty")
        pipeline.refresh()
        try:
            return pipeline.search(query, body.top_n).as_dict()
        except RagError as exc:
            raise ApiError(400, str(exc)) from exc

    @app.post("/v1/chat/completions")
    def chat(body: ChatRequest):
        question, history = _question(body), _history(body)
        if body.stream:
            return StreamingResponse(
                _stream(pipeline, busy, question, history, body.include_usage, body.token_cap),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # no proxy holds the tokens back
            )
        with busy.turn():
            answer = _ask(pipeline, question, history, max_tokens=body.token_cap)
        if answer.error:
            return _error(ApiError(502, f"the LLM failed: {answer.error}", "llm_error"), rag=_extra(answer))
        usage, estimated = _usage(answer)
        completion = _completion_base("chat.completion")
        completion["choices"] = [
            {"index": 0, "message": {"role": "assistant", "content": answer.answer}, "finish_reason": "stop"}
        ]
        completion["usage"] = usage
        completion["rag"] = _extra(answer, estimated)
        return completion

    return app


PAGE = Path(__file__).parent / "page"
REPORT_FILES = ("report.json", "report.md", "plot.png")


def find_reports(root: Path | None) -> list[dict]:
    """Folders under `root` (itself included) holding a `rag eval` report.json, by name."""
    if root is None or not root.is_dir():
        return []
    out = []
    for report in sorted(root.rglob("report.json")):
        folder = report.parent
        try:
            dataset = json.loads(report.read_text(encoding="utf-8")).get("dataset", {})
        except (OSError, ValueError):
            continue  # not a readable report: not listed
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        label = dataset.get("name") if isinstance(dataset, dict) else str(dataset)
        out.append({"name": name.replace("/", "__"), "folder": str(folder), "dataset": label,
                    "plot": (folder / "plot.png").is_file()})  # fmt: skip
    return out


def _writing(action, *args) -> dict:
    """An ingest or removal; a second writer is refused by the index lock: 409, not a wait (other
    failures are DocumentError with their own status)."""
    try:
        return action(*args)
    except IndexBusy as exc:
        raise ApiError(409, str(exc)) from exc
    except DocumentError:
        raise
    except RagError as exc:  # e.g. an index built with another embedder
        raise ApiError(400, str(exc)) from exc


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refused once it passes `limit`: a chunked upload has no Content-Length to check."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"request body over {limit:,} bytes; the limit is {limit:,}")
    return bytes(data)


def _ask(
    pipeline: Pipeline, question: str, history: list[Turn], on_token=None, max_tokens: int | None = None
) -> Answer:
    pipeline.refresh()
    try:
        return pipeline.ask(question, on_token=on_token, max_tokens=max_tokens, history=history)
    except RagError as exc:
        raise ApiError(422, str(exc)) from exc


def _completion_base(kind: str, request_id: str | None = None) -> dict:
    return {"id": request_id or f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()),
            "model": MODEL_ID}  # fmt: skip


def _error(exc: ApiError, **extra) -> JSONResponse:
    return JSONResponse({"error": {"message": exc.message, "type": exc.kind}, **extra}, status_code=exc.status)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class ClientGone(Exception):
    """Raised into the generation when its client has disconnected: the LLM stops writing."""


def _stream(
    pipeline: Pipeline,
    busy: Busy,
    question: str,
    history: list[Turn],
    include_usage: bool = False,
    max_tokens: int | None = None,
) -> Iterator[str]:
    """SSE in OpenAI's chunk format; the chunk with the `finish_reason` carries `rag` (sources,
    warnings, error), and with `include_usage` a last chunk with empty `choices` carries `usage`.

    The pipeline runs in a thread and hands each piece of text over a queue as the checks release
    it (they hold back only what may still become a bad citation or a repeat), so it reaches the
    client as the model writes it. A 429 or 422 arrives as an SSE error event, since the headers
    are sent."""
    request_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    pieces: queue.Queue = queue.Queue()
    outcome: dict = {}
    gone = threading.Event()  # the client went away: stop writing its answer, free the LLM

    def put(piece: str) -> None:
        if gone.is_set():
            raise ClientGone
        pieces.put(piece)

    def run() -> None:
        try:
            with busy.turn():
                outcome["answer"] = _ask(pipeline, question, history, on_token=put, max_tokens=max_tokens)
        except ApiError as exc:
            outcome["error"] = exc
        except ClientGone:
            pass
        finally:
            pieces.put(None)

    threading.Thread(target=run, daemon=True).start()

    def chunk(delta: dict, finish: str | None = None) -> dict:
        out = _completion_base("chat.completion.chunk", request_id)
        out["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        if include_usage:
            out["usage"] = None  # as OpenAI: null in every chunk but the last
        return out

    try:
        yield _sse(chunk({"role": "assistant", "content": ""}))
        while (piece := pieces.get()) is not None:
            yield _sse(chunk({"content": piece}))
    finally:  # also when the client disconnects and the response is closed mid-stream
        gone.set()
    if "error" in outcome:
        exc = outcome["error"]
        yield _sse({"error": {"message": exc.message, "type": exc.kind, "code": exc.status}})
    else:
        answer = outcome["answer"]
        usage, estimated = _usage(answer)
        final = chunk({}, "stop")
        final["rag"] = _extra(answer, estimated)
        yield _sse(final)
        if include_usage:
            last = _completion_base("chat.completion.chunk", request_id)
            last["choices"], last["usage"] = [], usage
            yield _sse(last)
    yield "data: [DONE]\n\n"

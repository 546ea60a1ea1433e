"""The LLM that writes answers: one interface (`ChatLLM`) over three engines.

- An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama…) through the `openai` client, when
  `RAG_LLM_BASE_URL`/`OPENAI_BASE_URL` or a key is set.
- Otherwise a packaged GGUF (`rag.models.local_llm`, Qwen2.5-Coder-1.5B-Instruct by default) on a
  local engine chosen by `RAG_LLM_ENGINE`:
  - `openvino`: OpenVINO GenAI in this process (`rag.models.openvino_llm`); it reads prompts
    ~2.5x faster than llama.cpp here, which is most of an answer's time, but its answers on the
    same weights are worse (docs_corpus: 18-19/28 right against llama.cpp's 21-22/28); when it is
    missing or cannot read the model, llamacpp answers and `ChatLLM.note` says why, in one line;
  - `llamacpp`: a llama.cpp server (`xllamacpp`) in this process on 127.0.0.1, reached through the
    same client code as a remote endpoint;
  - `auto` (default): the engine the measurement chose (docs/answers.md#engines), today llamacpp:
    speed that costs right answers is not a default.

Every failure becomes an `LLMError` with a one-line message; timeouts and retries are bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import httpx
import openai

from rag.errors import RagError
from rag.models.local_llm import gguf_path, local_model
from rag.settings import Settings


class LLMError(RagError):
    """The LLM endpoint failed; the retrieved sources are still worth showing."""


class ChatLLM(Protocol):
    """What the pipeline needs of an LLM, whatever the engine."""

    model: str  # the model's name, as answers report it
    engine: str  # openvino, llamacpp or openai (any OpenAI-compatible endpoint)
    note: str | None  # why the engine asked for was not used, one line
    can_tokenize: bool  # count_tokens is the model's own tokenizer

    def count_tokens(self, text: str) -> int: ...

    def stream(self, messages: list[dict], usage: dict | None = None, max_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer as written; fill `usage` (prompt_tokens, completion_tokens) when known.
        Closing the iterator stops the generation."""
        ...


@lru_cache(maxsize=2)
def start_local_server(model_name: str | None, threads: int, n_ctx: int) -> str:
    """Start (once per process and model) the in-process llama.cpp server; returns its /v1 base URL."""
    import xllamacpp as xlc

    model = local_model(model_name)
    params = xlc.CommonParams()
    params.model.path = str(gguf_path(model))
    params.model_alias = model.served_as
    params.n_ctx = n_ctx
    params.n_parallel = 1  # one slot: the whole context for one answer, and its prompt cache reused
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = -1  # llama.cpp logs to stderr by default
    server = xlc.Server(params)
    _servers.append(server)  # keep it alive for the life of the process
    return server.listening_address + "/v1"


_servers: list = []


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str
    model: str
    local: bool


def served_model(base_url: str, api_key: str, timeout: float) -> str:
    """The endpoint's model when it serves exactly one (vLLM, llama.cpp); else ask for RAG_LLM_MODEL."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=min(timeout, 10.0), max_retries=0)
    try:
        ids = [m.id for m in client.models.list()]
    except openai.OpenAIError as exc:
        raise LLMError(
            f"RAG_LLM_MODEL is not set and {base_url}/models did not answer ({type(exc).__name__}): "
            "set RAG_LLM_MODEL to the model name the endpoint serves"
        ) from exc
    if len(ids) == 1:
        return ids[0]
    listed = ", ".join(ids[:6]) + (", …" if len(ids) > 6 else "")
    raise LLMError(
        f"RAG_LLM_MODEL is not set and {base_url} serves {len(ids)} models ({listed or 'none'}): "
        "set RAG_LLM_MODEL to one of them"
    )


def resolve_endpoint(settings: Settings) -> Endpoint:
    """A configured endpoint (its own model unless one is named), else the local server."""
    if settings.llm_base_url or settings.llm_api_key:
        base_url = settings.llm_base_url or "https://api.openai.com/v1"  # key only: the OpenAI API itself
        api_key = settings.llm_api_key or "none"
        model = settings.llm_model or served_model(base_url, api_key, settings.llm_timeout)
        return Endpoint(base_url, api_key, model, False)
    model = local_model(settings.llm_model)
    base_url = start_local_server(model.name, settings.local_llm_threads, settings.local_llm_ctx)
    return Endpoint(base_url, "local", model.served_as, True)


class LLM:
    """An OpenAI-compatible endpoint: a remote one, or the local llama.cpp server."""

    def __init__(self, endpoint: Endpoint, settings: Settings, note: str | None = None) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.engine = "llamacpp" if endpoint.local else "openai"
        self.note = note
        self.client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )

    @property
    def model(self) -> str:
        return self.endpoint.model

    @property
    def can_tokenize(self) -> bool:
        """Only the local llama.cpp server is known to have /tokenize; OpenAI-compatible APIs do not."""
        return self.endpoint.local

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the local model's own tokenizer (the llama.cpp server's /tokenize)."""
        url = self.endpoint.base_url.removesuffix("/v1") + "/tokenize"
        try:
            response = httpx.post(url, json={"content": text, "add_special": False}, timeout=10.0)
            response.raise_for_status()
            return len(response.json()["tokens"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise LLMError(f"local LLM server at {url} could not tokenize ({type(exc).__name__})") from exc

    def stream(self, messages: list[dict], usage: dict | None = None, max_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer's text as it arrives; raise LLMError on any failure."""
        extra = {"stream_options": {"include_usage": True}} if usage is not None and self.endpoint.local else {}
        try:
            stream = self.client.chat.completions.create(
                model=self.endpoint.model,
                messages=messages,
                stream=True,
                max_tokens=max_tokens or self.settings.llm_max_tokens,
                temperature=self.settings.llm_temperature,
                **extra,
            )
            produced = False
            try:
                for event in stream:
                    if usage is not None and getattr(event, "usage", None) is not None:
                        usage["prompt_tokens"] = event.usage.prompt_tokens
                        usage["completion_tokens"] = event.usage.completion_tokens
                    if not getattr(event, "choices", None):
                        continue
                    delta = event.choices[0].delta
                    if delta is not None and delta.content:
                        produced = True
                        yield delta.content
            finally:  # also when the caller stops early: the server then stops generating
                stream.close()
        except openai.APITimeoutError as exc:
            raise LLMError(
                f"LLM at {self.endpoint.base_url} timed out after {self.settings.llm_timeout:g} s "
                f"({self.settings.llm_max_retries} retries): raise RAG_LLM_TIMEOUT or check the server"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMError(
                f"cannot reach the LLM at {self.endpoint.base_url}: is the server running? "
                "(check OPENAI_BASE_URL / RAG_LLM_BASE_URL)"
            ) from exc
        except openai.RateLimitError as exc:
            raise LLMError(
                f"LLM at {self.endpoint.base_url} is rate limiting (HTTP 429) after "
                f"{self.settings.llm_max_retries} retries: wait, or raise RAG_LLM_MAX_RETRIES"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"LLM at {self.endpoint.base_url} answered HTTP {exc.status_code}: {_short(_error_text(exc))}"
            ) from exc
        except (openai.OpenAIError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LLMError(
                f"LLM at {self.endpoint.base_url} sent a malformed response ({type(exc).__name__}: {_short(str(exc))})"
            ) from exc
        if not produced:
            raise LLMError(f"LLM at {self.endpoint.base_url} returned an empty answer (model {self.endpoint.model})")


def _error_text(exc: openai.APIStatusError) -> str:
    """The server's own error message when its body has one, else the client's summary."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class OpenVINOLLM:
    """A packaged model on OpenVINO GenAI in this process (`rag.models.openvino_llm`)."""

    engine = "openvino"
    can_tokenize = True
    note: str | None = None

    def __init__(self, settings: Settings) -> None:
        model = local_model(settings.llm_model)
        self.settings = settings
        self.model = model.served_as
        self.chat = _openvino_chat(model.name, settings.local_llm_threads, settings.local_llm_ctx)

    def count_tokens(self, text: str) -> int:
        return self.chat.count_tokens(text)

    def stream(self, messages: list[dict], usage: dict | None = None, max_tokens: int | None = None) -> Iterator[str]:
        from rag.models.openvino_llm import OpenVINOUnavailable

        produced = False
        pieces = self.chat.stream(
            messages, max_tokens or self.settings.llm_max_tokens, self.settings.llm_temperature, usage=usage
        )
        try:
            for piece in pieces:
                produced = True
                yield piece
        except OpenVINOUnavailable as exc:
            raise LLMError(str(exc)) from exc
        finally:
            pieces.close()
        if not produced:
            raise LLMError(f"OpenVINO GenAI returned an empty answer (model {self.model})")


_openvino_loaded: dict[tuple[str, int, int], object] = {}


def _openvino_chat(model_name: str, threads: int, context: int):
    """One OpenVINO pipeline per process and model, like the llama.cpp server: a load costs
    seconds. A failure is remembered too, so a fallback is decided once, not per question."""
    from rag.models.openvino_llm import OpenVINOChat, OpenVINOUnavailable

    key = (model_name, threads, context)
    if key not in _openvino_loaded:
        model = local_model(model_name)
        try:
            _openvino_loaded[key] = OpenVINOChat(model, gguf_path(model), threads, context)
        except OpenVINOUnavailable as exc:
            _openvino_loaded[key] = exc
    loaded = _openvino_loaded[key]
    if isinstance(loaded, Exception):
        raise loaded
    return loaded


def planned_identity(settings: Settings) -> tuple[str, str] | None:
    """The (model, engine) `open_llm` is asked for, known without starting anything, so cached
    answers can be found before a model loads; None when only the endpoint can name its model.
    A fallback (OpenVINO missing) shows when the LLM opens: callers compare then."""
    if settings.llm_base_url or settings.llm_api_key:
        return (settings.llm_model, "openai") if settings.llm_model else None
    engine = "openvino" if settings.llm_engine == "openvino" else "llamacpp"
    return local_model(settings.llm_model).served_as, engine


def open_llm(settings: Settings) -> ChatLLM:
    """The configured endpoint, else the local model on the engine `RAG_LLM_ENGINE` asks for.

    OpenVINO, when it is missing or cannot read the model, falls back to llama.cpp, with the
    reason kept in `.note`."""
    if settings.llm_base_url or settings.llm_api_key:
        return LLM(resolve_endpoint(settings), settings)
    note = None
    if settings.llm_engine == "openvino":
        from rag.models.openvino_llm import OpenVINOUnavailable

        try:
            return OpenVINOLLM(settings)
        except OpenVINOUnavailable as exc:
            note = f"LLM engine openvino unavailable ({exc}); using llamacpp"
    return LLM(resolve_endpoint(settings), settings, note)

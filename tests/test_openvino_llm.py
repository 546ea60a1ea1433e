"""The OpenVINO GenAI engine on the packaged GGUF, and the choice between engines.

The real engine is loaded once per session (`open_llm` keeps it); faults are injected only where
a real one cannot be had on demand (openvino-genai missing, a damaged converted model)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.llm import LLM, open_llm
from rag.models import local_llm, openvino_llm
from rag.models.openvino_llm import MANIFEST, OpenVINOUnavailable, _intact, convert
from rag.settings import Settings

runner = CliRunner()
DOCS = [
    {"role": "system", "content": "Answer from the document only, in the language of the question."},
    {
        "role": "user",
        "content": "Document: 예약한 책은 도착한 날부터 3일 동안 보관합니다.\n\n"
        "질문: 예약한 책은 며칠 동안 보관하나요?",
    },
]


@pytest.fixture(scope="module")
def ov_llm():
    llm = open_llm(Settings(llm_engine="openvino"))
    assert llm.engine == "openvino" and llm.note is None
    return llm


def test_openvino_streams_a_korean_answer_with_its_token_counts(ov_llm):
    usage: dict = {}
    pieces = list(ov_llm.stream(DOCS, usage=usage))
    assert len(pieces) > 3  # streamed as written, not in one piece
    answer = "".join(pieces)
    assert "3일" in answer
    assert usage["prompt_tokens"] > 20 and usage["completion_tokens"] >= 3
    assert ov_llm.count_tokens("예약한 책은 며칠 동안 보관하나요?") > 5


def test_closing_the_stream_stops_the_generation_and_the_next_answer_is_whole(ov_llm):
    endless = [{"role": "user", "content": "Count from 1 to 500, one number per line."}]
    usage: dict = {}
    stream = ov_llm.stream(endless, usage=usage, max_tokens=200)
    first = [next(stream) for _ in range(3)]
    stream.close()  # what a client disconnecting does
    assert first and usage.get("completion_tokens", 0) < 50  # cancelled at the next token, not at 200
    assert "3일" in "".join(ov_llm.stream(DOCS))


def test_a_prompt_over_the_context_window_is_one_line_naming_the_fix(ov_llm, monkeypatch):
    from rag.llm import LLMError

    monkeypatch.setattr(ov_llm.chat, "context", 64)  # a window smaller than this prompt and its answer
    with pytest.raises(LLMError, match=r"need \d+ tokens, over the local LLM's window of 64 .*RAG_LLM_CONTEXT_TOKENS"):
        list(ov_llm.stream(DOCS))


def test_the_converted_model_is_reused_and_a_damaged_one_is_noticed(ov_llm, tmp_path):
    model = local_llm.local_model(None)
    gguf = local_llm.gguf_path(model)
    folder = openvino_llm.converted_dir(model, gguf)
    assert convert(model, gguf) == folder and _intact(folder)  # made once, found again
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["gguf_sha256"] == model.sha256
    assert set(manifest["files"]) >= set(openvino_llm.IR_FILES)
    # a copy with one file cut short is not intact, so it would be converted again
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, entry in manifest["files"].items():
        (copy / name).write_bytes(b"x" * (entry["size"] if not name.endswith(".xml") else 1))
    (copy / MANIFEST).write_text(json.dumps(manifest))
    assert not _intact(copy)


def test_a_file_openvino_cannot_read_is_one_line_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 4096)
    model = replace(local_llm.QWEN_0_5B, sha256="0" * 64)
    with pytest.raises(OpenVINOUnavailable, match=r"cannot read bad\.gguf") as error:
        convert(model, bad)
    assert "\n" not in str(error.value)
    assert [p.name for p in (tmp_path / "openvino").iterdir()] == []  # no partial folder left


def test_a_missing_openvino_falls_back_to_llamacpp_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino_genai", None)  # as if not installed
    monkeypatch.setattr("rag.llm._openvino_loaded", {})
    llm = open_llm(Settings(llm_engine="openvino"))
    assert isinstance(llm, LLM) and llm.engine == "llamacpp"
    assert llm.note.startswith("LLM engine openvino unavailable (openvino-genai is not installed")
    assert llm.note.endswith("; using llamacpp") and "\n" not in llm.note


def test_auto_is_the_engine_that_answered_more_questions_right():
    """docs/answers.md#engines: llama.cpp kept docs_corpus accuracy where OpenVINO lost answers."""
    llm = open_llm(Settings(llm_engine="auto"))
    assert llm.engine == "llamacpp" and llm.note is None


def test_llamacpp_is_used_when_asked_for(monkeypatch):
    llm = open_llm(Settings(llm_engine="llamacpp"))
    assert llm.engine == "llamacpp" and llm.note is None


def test_an_unknown_engine_is_one_line_naming_the_choices(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_LLM_ENGINE", "turbo")
    result = runner.invoke(app, ["ask", "hello?", "--index", str(tmp_path)])
    assert result.exit_code != 0
    assert "RAG_LLM_ENGINE 'turbo' is not an engine: choose auto, openvino, llamacpp" in result.output
    assert "Traceback" not in result.output

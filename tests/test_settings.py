"""One settings object: RAG_ env vars, the standard OPENAI_* names, .env, CLI flags on top."""

from __future__ import annotations

import itertools
from pathlib import Path

from rag.cli import _settings
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_env_prefix_and_openai_names(monkeypatch):
    monkeypatch.setenv("RAG_CANDIDATES", "50")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = Settings()
    assert settings.candidates == 50
    assert settings.llm_base_url == "http://localhost:8000/v1" and settings.llm_api_key == "sk-test"


def test_dotenv_file_is_read_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("RAG_TOP_N=6\nRAG_RERANKER=ko-reranker\n", encoding="utf-8")
    assert Settings().top_n == 6
    settings = _settings(top_n=2, reranker=None)
    assert settings.top_n == 2 and settings.reranker == "ko-reranker"


def test_default_index_lives_in_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert Settings().index_dir == tmp_path / "rag" / "index"


def test_env_example_documents_every_setting():
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    documented = {}
    for before, line in itertools.pairwise(lines):
        if line.startswith("# RAG_") and "=" in line:
            documented[line[2:].split("=")[0]] = before
    assert set(documented) == {f"RAG_{name.upper()}" for name in Settings.model_fields}
    for meaning in documented.values():  # each variable has a one-line meaning right above it
        assert meaning.startswith("# ") and "=" not in meaning.split("(")[0]

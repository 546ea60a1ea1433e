"""Shared fixtures: real models (packaged MiniLM, a CrossEncoder built from it, the local LLM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.models.embedder import packaged_minilm_path
from rag.quiet import quiet_libraries
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "docs_corpus"
SHARED = ROOT.parent / "shared"

quiet_libraries()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No user .env, endpoint or index folder leaks into a test.

    Each test gets its own cache, except for the content-addressed model folders (assembled and
    converted models, ONNX exports): those are shared, as one user's runs share them, so the
    470 MB multilingual-e5 base is built once per session rather than once per test.
    """
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "RAG_LLM_BASE_URL", "RAG_LLM_API_KEY", "RAG_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))
    cache = tmp_path_factory.mktemp("xdg-cache")
    for shared in ("models", "onnx"):
        folder = tmp_path_factory.getbasetemp() / f"shared-{shared}"
        folder.mkdir(exist_ok=True)
        (cache / "rag").mkdir(exist_ok=True)
        (cache / "rag" / shared).symlink_to(folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


DOCS = {
    "fees.txt": "Late fees are 100 won per day per book. The maximum late fee is 5,000 won.",
    "hours.md": "# Hours\n\nThe main library opens at 9 and closes at 22 on weekdays.",
    "ko/대출.txt": "성인은 한 번에 일곱 권까지 빌릴 수 있습니다. 대출 기간은 14일입니다.",
}


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "docs"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def index_dir(tmp_path) -> Path:
    return tmp_path / "index"


def make_settings(index_dir: Path, **overrides) -> Settings:
    return Settings(index_dir=index_dir, **overrides)


@pytest.fixture(params=["local", "milvus"])
def store_kind(request, monkeypatch) -> Iterator[str]:
    """Runs a behaviour test on both stores (RAG_STORE, which make_settings reads); Milvus Lite
    in the test's folder, its in-process server stopped afterwards."""
    monkeypatch.setenv("RAG_STORE", request.param)
    yield request.param
    if request.param == "milvus":
        from rag.store.milvus import release_all

        release_all()


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory) -> Path:
    """A real CrossEncoder: the packaged MiniLM encoder with a seeded, untrained scoring head.

    Its scores carry no relevance knowledge; it exercises the real model code path offline.
    """
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(str(packaged_minilm_path()), num_labels=1, device="cpu")
    folder = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(folder))
    return folder


@pytest.fixture(scope="session")
def corpus_questions() -> list[dict]:
    lines = (CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory) -> Path:
    """docs_corpus ingested once for the session through the real ingest path."""
    from ingest.writer import IndexWriter

    index_dir = tmp_path_factory.mktemp("corpus-index")
    IndexWriter(make_settings(index_dir)).ingest([CORPUS])
    return index_dir


@pytest.fixture(scope="session")
def milvus_corpus_index(tmp_path_factory) -> Iterator[Path]:
    """docs_corpus ingested once for the session into Milvus Lite (INDEX/milvus.db)."""
    from ingest.writer import IndexWriter
    from rag.store.milvus import release

    index_dir = tmp_path_factory.mktemp("milvus-corpus-index")
    IndexWriter(make_settings(index_dir, store="milvus")).ingest([CORPUS])
    yield index_dir
    release(str(index_dir / "milvus.db"))


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory) -> Iterator[str]:
    """One local Ray for the session (2 CPUs, 100 MB object store): its GCS address. Its workers
    get the tests' isolation (their own XDG folders sharing the model caches, no hub), fixed at start."""
    pytest.importorskip("ray")
    import ray

    from ingest.ray_pipeline import LOCAL, connect

    cache = tmp_path_factory.mktemp("ray-xdg-cache")
    (cache / "rag").mkdir()
    for shared in ("models", "onnx"):
        folder = tmp_path_factory.getbasetemp() / f"shared-{shared}"
        folder.mkdir(exist_ok=True)
        (cache / "rag" / shared).symlink_to(folder)
    with pytest.MonkeyPatch.context() as patch:  # the raylet, hence every worker, inherits this
        patch.setenv("XDG_CACHE_HOME", str(cache))
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("ray-xdg")))
        patch.setenv("HF_HUB_OFFLINE", "1")
        connect(LOCAL, cpus=2, object_store_mb=100)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()

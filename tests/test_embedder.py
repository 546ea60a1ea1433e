"""The default embedder: multilingual-e5-small through ONNX Runtime int8, and indexes made before it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ingest.writer import IndexWriter
from rag.cli import app
from rag.errors import RagError
from rag.models.embedder import load_embedder
from rag.pipeline import Pipeline
from rag.retrieve.retrievers import DenseRetriever
from rag.settings import PACKAGED_EMBEDDER, Settings
from rag.store.local import LocalReader as IndexReader
from rag.store.local import live_generation
from tests.conftest import make_settings

E5 = "multilingual-e5-small"


@pytest.fixture
def corpus_texts(corpus_index) -> list[str]:
    """docs_corpus chunks (Korean and English, as ingest read them, legacy encodings included)."""
    reader = IndexReader(corpus_index)
    rows = [text for (text,) in reader.db.execute("SELECT text FROM chunks ORDER BY id LIMIT 24")]
    reader.close()
    return rows


def test_the_default_embedder_reads_korean_through_onnx_int8():
    settings = Settings()
    assert settings.embedder == E5 and settings.embed_backend == "onnx-int8"
    embedder = load_embedder(E5)
    assert embedder.backend == "onnx-int8" and embedder.dimension == 384
    assert (embedder.query_prefix, embedder.passage_prefix) == ("query: ", "passage: ")


def test_int8_vectors_are_the_float32_vectors_within_rounding(corpus_texts):
    fast, exact = load_embedder(E5), load_embedder(E5, backend="torch")
    texts = corpus_texts
    passages_fast, passages_exact = fast.embed_passages(texts), exact.embed_passages(texts)
    assert np.allclose(np.linalg.norm(passages_fast, axis=1), 1.0, atol=1e-4)
    # 0.9984-0.9999 measured; 0.994 when the three layers whose inputs carry outliers were int8 too
    assert (passages_fast * passages_exact).sum(axis=1).min() > 0.997
    questions = ["도서관 연체료는 얼마인가요?", "Who designed the Main Library?"]
    assert (fast.embed_queries(questions) * exact.embed_queries(questions)).sum(axis=1).min() > 0.997
    # what this costs in ranking is measured on the evaluation sets (README: dense mrr@10 against float32)


def test_batching_by_tokens_moves_a_vector_by_rounding_only(corpus_texts):
    """int8 scales activations per call, so a text's batch partners shift its vector a little."""
    texts = corpus_texts
    together = load_embedder(E5).embed_passages(texts)
    alone = np.stack([load_embedder(E5).embed_passages([t])[0] for t in texts[:6]])
    assert (together[:6] * alone).sum(axis=1).min() > 0.997  # 0.9984 measured


def test_an_index_keeps_the_backend_it_was_embedded_with(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("도서관은 평일 오전 9시에 문을 연다.", encoding="utf-8")
    index_dir = tmp_path / "index"
    IndexWriter(make_settings(index_dir, embed_backend="torch")).ingest([docs])
    (docs / "b.txt").write_text("Late fees are 100 won per day.", encoding="utf-8")
    IndexWriter(make_settings(index_dir)).ingest([docs])  # the default is onnx-int8, the index says torch
    manifest = json.loads((live_generation(index_dir) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embed_backend"] == "torch" and manifest["embedder"] == E5
    assert DenseRetriever.open(index_dir).embedder.backend == "torch"


def test_an_unknown_backend_is_one_clear_error(tmp_path):
    with pytest.raises(RagError, match="unknown embedding backend 'gpu': use onnx-int8 or torch"):
        load_embedder(E5, backend="gpu")


def test_an_index_built_with_the_old_default_keeps_working_with_a_note(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fees.txt").write_text("Late fees are 100 won per day per book.", encoding="utf-8")
    index_dir = tmp_path / "index"
    IndexWriter(make_settings(index_dir, embedder=PACKAGED_EMBEDDER)).ingest([docs])
    manifest_path = live_generation(index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["embed_backend"]  # as an index written before the backend was recorded
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

    (docs / "hours.txt").write_text("The library opens at 9 on weekdays.", encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", str(docs), "--index", str(index_dir)])  # no --embedder
    assert result.exit_code == 0, result.output
    assert "ingested 1, unchanged 1" in result.output
    assert "note: this index was embedded with sentence-transformers/all-MiniLM-L6-v2, which cannot read Korean" in (
        " ".join(result.output.split())
    )
    pipeline = Pipeline(make_settings(index_dir, reranker="none"))
    assert pipeline.retriever.embedder.model_id == PACKAGED_EMBEDDER and pipeline.retriever.embedder.backend == "torch"
    assert "re-ingest into a new --index folder for Korean dense retrieval" in (pipeline.index_note or "")
    assert Path(pipeline.retriever.retrieve("What is the late fee?", 1)[0].source).name == "fees.txt"
    # asked for by name, the old model is a choice, not something to warn about
    assert Pipeline(make_settings(index_dir, reranker="none", embedder=PACKAGED_EMBEDDER)).index_note is None


def test_a_second_load_reads_the_export_without_torch(corpus_texts, monkeypatch):
    """Once exported, the embedder loads with neither torch nor transformers (~0.9 GB less
    resident in `rag ask`), and gives the same vectors as the load that exported it."""
    import subprocess
    import sys

    from rag.models import embedder as embedder_module

    monkeypatch.setattr(embedder_module, "cached_encoder", lambda folder, workers=None: None)  # force the torch load
    exported = embedder_module.Embedder(E5)  # exports if needed and notes the folder
    texts = [*corpus_texts[:8], "도서관 " * 600]  # and one past the 512-token window
    expected = exported.embed_passages(texts)
    script = (
        "import json, sys\n"
        "from rag.models.embedder import Embedder\n"
        f"e = Embedder({E5!r})\n"
        "v = e.embed_passages(json.loads(sys.stdin.read()))\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'transformers': 'transformers' in sys.modules,"
        " 'backend': e.backend, 'dimension': e.dimension, 'vectors': v.tolist()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True, check=True
    )
    second = json.loads(done.stdout.strip().splitlines()[-1])
    assert not second["torch"] and not second["transformers"]
    assert (second["backend"], second["dimension"]) == ("onnx-int8", 384)
    assert np.allclose(np.array(second["vectors"], dtype=np.float32), expected, atol=1e-6)


def test_the_tokenizer_file_gives_transformers_ids(corpus_texts):
    from transformers import AutoTokenizer

    from rag.models.embedder import resolve_model_path
    from rag.models.onnx_int8 import TokenizerJSON

    folder = Path(resolve_model_path(E5))
    texts = [*corpus_texts, "  두 칸  공백\n\n줄바꿈\t탭 — “따옴표” … 『책』 ①②", "x" * 5000, "회원증 " * 700]
    ours = TokenizerJSON(folder / "tokenizer.json", "<pad>")
    theirs = AutoTokenizer.from_pretrained(str(folder))
    assert (
        ours(texts, truncation=True, max_length=512)["input_ids"]
        == theirs(texts, truncation=True, max_length=512)["input_ids"]
    )
    assert ours.pad_token_id == theirs.pad_token_id


def test_an_export_that_fails_its_checksum_is_not_loaded(monkeypatch, tmp_path):
    """A damaged ONNX file under the note's name: the fast path refuses it (the caller exports again)."""
    from rag.models.embedder import load_embedder, resolve_model_path
    from rag.models.onnx_int8 import _encoder_note, cached_encoder

    load_embedder(E5)  # the note and the export exist
    folder = Path(resolve_model_path(E5))
    note = json.loads(_encoder_note(folder).read_text())
    assert cached_encoder(folder) is not None
    damaged = tmp_path / "cache"
    (damaged / "rag" / "onnx").mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(damaged))
    (damaged / "rag" / "onnx" / _encoder_note(folder).name).write_text(json.dumps(note))
    (damaged / "rag" / "onnx" / note["onnx"]).write_bytes(b"\x08\x07not an onnx graph")
    assert cached_encoder(folder) is None

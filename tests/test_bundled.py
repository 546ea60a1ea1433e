"""The bundled Korean + English reranker: compact storage, offline assembly, ranking, ONNX int8."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

from rag.errors import RagError
from rag.models import multilingual_e5
from rag.models.embedder import resolve_model_path
from rag.models.onnx_int8 import OnnxScorer, cores
from rag.rerank import bundled
from rag.rerank.reranker import Reranker

PAIRS = [  # (query, passages); the answer is always the second passage
    (
        "연체료는 하루에 얼마인가요?",
        ["주차는 처음 두 시간 무료입니다.", "연체료는 책 한 권당 하루 100원입니다.", "본관은 밤 10시에 닫습니다."],
    ),
    (
        "How late is the main library open?",
        ["Late fees are 100 won a day.", "The main library is open until 22:00 on weekdays.", "Parking is free."],
    ),
    (
        "스터디룸은 어떻게 예약하나요?",
        ["어린이는 다섯 권을 빌립니다.", "스터디룸은 앱에서 하루 전까지 예약합니다.", "희망도서는 세 권입니다."],
    ),
]


def test_the_package_holds_no_pickle_and_fits_the_size_budget():
    files = {p.name: p.stat().st_size for p in bundled.FOLDER.iterdir()}
    assert bundled.WEIGHTS in files and "rag_reranker.json" in files and "README.md" in files
    assert all(name.endswith((".safetensors", ".json", ".md")) for name in files)
    assert sum(files.values()) <= 30 * 1024 * 1024


@pytest.fixture(scope="module")
def bundled_reranker() -> Reranker:
    return Reranker(bundled.NAME)


def test_bundled_reranker_loads_offline_by_name_and_ranks_the_answer_first(bundled_reranker):
    assert bundled_reranker.logit_weight is not None  # the fitted blend ships with it
    for query, passages in PAIRS:
        assert int(np.argmax(bundled_reranker.score(query, passages))) == 1, query
    tokenizer = bundled_reranker.model.tokenizer
    assert tokenizer.unk_token_id not in tokenizer("연체료는 하루에 얼마인가요?")["input_ids"]


def test_assembly_is_cached_and_rebuilds_the_trained_tensors_from_the_base(tmp_path):
    first = bundled.assemble(cache_dir=tmp_path)
    again = bundled.assemble(cache_dir=tmp_path)
    assert first == again and [p.name for p in tmp_path.iterdir()] == [first.name]  # no staging leftovers
    full = load_file(str(first / "model.safetensors"))
    compact = load_file(str(bundled.FOLDER / bundled.WEIGHTS))
    torch.testing.assert_close(full["classifier.weight"], compact["full:classifier.weight"].float())
    base = load_file(str(Path(resolve_model_path(multilingual_e5.NAME)) / "model.safetensors"))
    words = "embeddings.word_embeddings.weight"
    assert torch.equal(full[bundled.PREFIX + words], base[words])  # frozen in training: not stored at all
    assert not any(words in name for name in compact)
    layer = "encoder.layer.3.intermediate.dense.weight"
    assert not torch.equal(full[bundled.PREFIX + layer], base[layer])  # trained: base + int8 difference


def test_a_changed_blend_weight_in_the_bundle_is_not_served_from_a_stale_assembly(tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundled.FOLDER, copy)
    before = bundled.assemble(copy, cache_dir=tmp_path / "cache")
    blend = json.loads((copy / "rag_reranker.json").read_text()) | {"logit_weight": 0.25}
    (copy / "rag_reranker.json").write_text(json.dumps(blend))
    after = bundled.assemble(copy, cache_dir=tmp_path / "cache")
    assert after != before
    assert json.loads((after / "rag_reranker.json").read_text())["logit_weight"] == 0.25


def test_pack_round_trip_keeps_the_scores_and_refuses_a_model_not_built_on_the_base(tmp_path):
    model_dir = bundled.assemble(cache_dir=tmp_path / "cache")
    packed = bundled.pack(model_dir, multilingual_e5.NAME, tmp_path / "packed")
    assert "tokenizer.json" not in {p.name for p in packed.iterdir()}  # the base's, not copied
    again = Reranker(str(bundled.assemble(packed, cache_dir=tmp_path / "cache2")))
    original = Reranker(str(model_dir))
    for query, passages in PAIRS:
        np.testing.assert_allclose(again.score(query, passages), original.score(query, passages), atol=0.01)

    with pytest.raises(RagError, match="another folder"):  # would delete the model it reads
        bundled.pack(model_dir, multilingual_e5.NAME, model_dir)

    shrunk = tmp_path / "shrunk"
    shutil.copytree(model_dir, shrunk)
    state = load_file(str(shrunk / "model.safetensors"))
    state["bert.embeddings.word_embeddings.weight"] = state["bert.embeddings.word_embeddings.weight"][:1000]
    save_file(state, str(shrunk / "model.safetensors"))
    with pytest.raises(RagError, match="is not the base's"):
        bundled.pack(shrunk, multilingual_e5.NAME, tmp_path / "bad")


def test_a_model_cut_to_fewer_layers_packs_without_the_dropped_layers(tmp_path):
    from sentence_transformers import CrossEncoder

    from rag.training.train import keep_layers

    model = CrossEncoder(str(bundled.assemble(cache_dir=tmp_path / "cache")))
    keep_layers(model.model, 8)
    model.save(str(tmp_path / "cut"))
    packed = bundled.pack(tmp_path / "cut", multilingual_e5.NAME, tmp_path / "packed")
    assert not any(".layer.8." in name for name in load_file(str(packed / bundled.WEIGHTS)))
    assembled = bundled.assemble(packed, cache_dir=tmp_path / "cache2")
    assert not any(".layer.8." in name for name in load_file(str(assembled / "model.safetensors")))
    again, original = Reranker(str(assembled)), Reranker(str(tmp_path / "cut"))
    assert len(again.model.model.base_model.encoder.layer) == 8
    for query, passages in PAIRS:
        np.testing.assert_allclose(again.score(query, passages), original.score(query, passages), atol=0.01)


def test_missing_weights_say_how_to_rebuild(tmp_path):
    with pytest.raises(RagError, match="make reranker"):
        bundled.assemble(tmp_path, cache_dir=tmp_path / "cache")


def test_onnx_int8_backend_ranks_like_torch_and_is_cached(bundled_reranker, caplog):
    fast = Reranker(bundled.NAME, backend="onnx-int8")
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]  # a quiet first use
    for query, passages in PAIRS:
        assert np.argmax(fast.score(query, passages)) == np.argmax(bundled_reranker.score(query, passages))
    graph = onnx.load(str(fast._onnx_path), load_external_data=False).graph
    assert "IsNaN" not in {node.op_type for node in graph.node}  # eager attention: no SDPA mask fix-ups per layer
    assert fast.model.model.config._attn_implementation == "sdpa"  # the torch model is left as it was
    exported = sorted(p.name for p in fast._onnx_path.parent.iterdir())
    Reranker(bundled.NAME, backend="onnx-int8")  # a second load reuses the exported file
    assert sorted(p.name for p in fast._onnx_path.parent.iterdir()) == exported


def test_bfloat16_backend_scores_like_float32(bundled_reranker):
    half = Reranker(bundled.NAME, backend="torch-bf16")
    for query, passages in PAIRS:
        exact, fast = bundled_reranker.score(query, passages), half.score(query, passages)
        assert np.argmax(fast) == np.argmax(exact)
        np.testing.assert_allclose(fast, exact, atol=0.25)  # bfloat16 keeps 8 bits of mantissa


def test_onnx_scores_follow_the_passages_whatever_their_order_company_or_batch():
    one = Reranker(bundled.NAME, backend="onnx-int8")  # by default each pair runs alone
    for query, passages in PAIRS:
        forward = one.score(query, passages)
        np.testing.assert_array_equal(one.score(query, passages[::-1]), forward[::-1])
        np.testing.assert_array_equal(one.score(query, passages[:1]), forward[:1])  # alone or among others
        batched = Reranker(bundled.NAME, batch_size=4, backend="onnx-int8").score(query, passages)
        assert np.argmax(batched) == np.argmax(forward)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(RagError, match=r"'tensorrt' is not one of torch, torch-bf16, onnx-int8, or fast .*RAG_RERANK"):
        Reranker(bundled.NAME, backend="tensorrt")


def test_blend_file_is_valid_json_with_its_validation_numbers():
    fitted = json.loads((bundled.FOLDER / "rag_reranker.json").read_text())
    assert fitted["val_mrr@10"] >= fitted["val_mrr@10_first_stage_only"]


def test_onnx_batches_run_side_by_side_with_the_logits_of_one_worker():
    fast = Reranker(bundled.NAME, backend="onnx-int8")
    assert fast._onnx.workers == cores()  # one batch per core at a time
    tokenizer, path = fast.model.tokenizer, fast._onnx_path
    alone, side_by_side = (OnnxScorer(path, tokenizer, fast.max_length, workers=n) for n in (1, 3))
    for query, passages in PAIRS:
        pairs = [(query, p) for p in passages * 3]  # enough batches for every worker
        np.testing.assert_array_equal(side_by_side.predict(pairs, 2), alone.predict(pairs, 2))

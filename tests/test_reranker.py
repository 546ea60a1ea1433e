"""The reranker with a real CrossEncoder (packaged MiniLM weights, seeded head, built offline)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rag.rerank import bundled
from rag.rerank.reranker import (
    PRESETS,
    Reranker,
    RerankerUnavailable,
    blend,
    load_reranker,
    reranker_options,
    resolve_reranker,
)
from rag.retrieve.hits import Hit
from rag.settings import Settings
from rag.store import StoredChunk

QUERY = "How many books can an adult borrow?"
PASSAGES = [
    "Adults may borrow up to seven books at once for fourteen days.",
    "Parking is free.",
    "The makerspace has two 3D printers and a laser cutter; sessions are booked online a day ahead, "
    "and each session lasts at most two hours so that other members get their turn as well.",
    "성인은 한 번에 일곱 권까지 빌릴 수 있습니다.",
    "Children's story time is every Saturday at 11.",
]


def hits() -> list[Hit]:
    return [
        Hit(
            StoredChunk(i, f"doc{i}.txt", f"doc{i}", None, 0, len(t), t),
            retrieval_score=1 - i / 10,
            retrieval_rank=i + 1,
        )
        for i, t in enumerate(PASSAGES)
    ]


@pytest.fixture(scope="module")
def reranker(cross_encoder_dir) -> Reranker:
    return Reranker(str(cross_encoder_dir), batch_size=2, max_length=256)


def test_scores_do_not_depend_on_length_sorting_or_batching(reranker):
    """Sorting pairs by length is a speed trick only: each pair's score must be unchanged.

    The reference is sentence-transformers' own CrossEncoder.predict, one pair at a time."""
    sorted_batched = reranker.score(QUERY, PASSAGES)
    identity = torch.nn.Identity()
    one_by_one = [float(reranker.model.predict([(QUERY, p)], activation_fn=identity)[0]) for p in PASSAGES]
    np.testing.assert_allclose(sorted_batched, one_by_one, rtol=1e-4, atol=1e-4)
    assert len(set(np.round(sorted_batched, 4))) == len(PASSAGES)  # a real model, distinct scores


def test_rerank_orders_by_score_and_keeps_top_n(reranker):
    ranked = reranker.rerank(QUERY, hits(), top_n=3)
    raw = reranker.score(QUERY, PASSAGES)
    assert [h.chunk.id for h in ranked] == list(np.argsort(-raw)[:3])
    assert [h.rerank_score for h in ranked] == sorted((h.rerank_score for h in ranked), reverse=True)


def test_rerank_reports_raw_sigmoid_and_relative_scores(reranker):
    ranked = reranker.rerank(QUERY, hits())
    for hit in ranked:
        assert hit.rerank_prob == pytest.approx(1 / (1 + math.exp(-hit.rerank_score)))
        assert 0 < hit.rerank_relative < 1
    assert sum(h.rerank_relative for h in ranked) == pytest.approx(1.0)
    assert ranked[0].rerank_relative == max(h.rerank_relative for h in ranked)


def test_rerank_of_nothing_is_nothing(reranker):
    assert reranker.rerank(QUERY, []) == []


def test_presets_resolve_to_hub_ids_and_other_names_pass_through():
    assert resolve_reranker("bge-reranker-v2-m3") == "BAAI/bge-reranker-v2-m3"
    assert resolve_reranker("ko-reranker") == "Dongjin-kr/ko-reranker"
    assert resolve_reranker("/models/my-reranker") == "/models/my-reranker"
    assert set(PRESETS) == {"bge-reranker-v2-m3", "ko-reranker"}


@pytest.mark.parametrize("name", ["none", "None", "off"])
def test_none_disables_rerank(name):
    assert load_reranker(name) is None


def test_unavailable_hub_model_says_how_to_fix_it():
    with pytest.raises(RerankerUnavailable) as info:
        Reranker("bge-reranker-v2-m3")
    message = str(info.value)
    assert "BAAI/bge-reranker-v2-m3" in message and "--reranker none" in message
    assert "\n" not in message


def test_missing_local_folder_is_named_in_the_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(RerankerUnavailable, match="no-such-model"):
        Reranker(str(missing))


def test_blend_keeps_a_confident_first_stage_unless_the_logits_disagree_widely():
    retrieval = np.array([0.9, 0.5, 0.1])  # min-max: 1.0, 0.5, 0.0
    logits = np.array([0.0, 4.0, 1.0])
    np.testing.assert_allclose(blend(retrieval, logits, None), logits)  # no weight: the logits alone
    assert np.argmax(blend(retrieval, logits, 0.1)) == 0  # 1.0 + 0 beats 0.5 + 0.4
    assert np.argmax(blend(retrieval, logits, 0.2)) == 1  # 0.5 + 0.8 beats 1.0
    np.testing.assert_allclose(blend(retrieval, logits, 0.0), [1.0, 0.5, 0.0])


def _with_blend(cross_encoder_dir: Path, folder: Path, content: str) -> Path:
    shutil.copytree(cross_encoder_dir, folder)
    (folder / "rag_reranker.json").write_text(content, encoding="utf-8")
    return folder


def test_a_fitted_logit_weight_in_the_model_folder_orders_the_rerank(cross_encoder_dir, tmp_path):
    blended = Reranker(str(_with_blend(cross_encoder_dir, tmp_path / "m", '{"logit_weight": 0.0}')))
    ranked = blended.rerank(QUERY, hits())
    assert blended.logit_weight == 0.0
    assert [h.retrieval_rank for h in ranked] == [1, 2, 3, 4, 5]  # weight 0: the first stage decides
    assert [h.final_score for h in ranked] == sorted((h.final_score for h in ranked), reverse=True)
    assert all(h.rerank_score is not None for h in ranked)  # the logits are still reported


@pytest.mark.parametrize("content", ['{"logit_weight": "a lot"}', '{"logit_weight": -1}', "{"])
def test_a_broken_blend_file_is_named_in_the_error(cross_encoder_dir, tmp_path, content):
    folder = _with_blend(cross_encoder_dir, tmp_path / "m", content)
    with pytest.raises(RerankerUnavailable, match=r"rag_reranker\.json") as info:
        Reranker(str(folder))
    assert "\n" not in str(info.value)


def test_the_bundled_reranker_runs_as_measured_unless_the_settings_say_otherwise(monkeypatch):
    assert reranker_options(Settings(), bundled.NAME) == {"batch_size": None, "max_length": 256, "backend": "onnx-int8"}
    assert reranker_options(Settings(), "BAAI/bge-reranker-v2-m3") == {
        "batch_size": None,
        "max_length": 512,
        "backend": "torch",
    }
    monkeypatch.setenv("RAG_RERANK_BACKEND", "fast")  # asked for by name, for any model
    assert reranker_options(Settings(), "BAAI/bge-reranker-v2-m3")["backend"] == "onnx-int8"
    monkeypatch.setenv("RAG_RERANK_BACKEND", "torch")
    monkeypatch.setenv("RAG_RERANK_MAX_LENGTH", "384")
    assert reranker_options(Settings(), bundled.NAME) == {"batch_size": None, "max_length": 384, "backend": "torch"}

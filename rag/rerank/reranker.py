"""Cross-encoder reranking of retrieved candidates (sentence-transformers `CrossEncoder`).

A cross-encoder reads query and passage together, so it judges relevance far better than the
bi-encoder that retrieved them, at a cost paid per pair: only the candidates are scored.
On CPU the waste is padding, so pairs are sorted by length before batching; scores are mapped
back to the original order, so sorting changes speed only, never results.

A model folder may carry `rag_reranker.json` with a `logit_weight` λ (fitted by
`rag reranker calibrate`): the final order then follows minmax(retrieval score) + λ * logit over
the candidates. A small cross-encoder trained on one domain can be confidently wrong on another;
the blend keeps a strong first-stage ranking unless the cross-encoder disagrees by a wide margin.
The logit is left unscaled on purpose: min-max scaling would stretch a cross-encoder's
near-ties on unfamiliar text into the same 0..1 spread as its confident calls on familiar text.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.hub import load_model
from rag.quiet import quiet_libraries
from rag.rerank import bundled
from rag.rerank.pair_batches import length_batches
from rag.retrieve.hits import Hit
from rag.settings import Settings

PRESETS = {
    "bge-reranker-v2-m3": "BAAI/bge-reranker-v2-m3",
    "ko-reranker": "Dongjin-kr/ko-reranker",
}
NO_RERANK = {"none", "off", ""}
BLEND_FILE = "rag_reranker.json"


class RerankerUnavailable(RagError):
    """The reranker model could not be loaded (offline and not cached, bad path, …)."""


def sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] within one candidate set (all zeros when every value is equal)."""
    values = np.asarray(values, dtype=np.float64)
    spread = values.max() - values.min() if len(values) else 0.0
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values)


def blend(retrieval: np.ndarray, logits: np.ndarray, logit_weight: float | None) -> np.ndarray:
    """The final ranking score: the logits alone (weight None), or minmax(retrieval) + weight * logits."""
    logits = np.asarray(logits, dtype=np.float64)
    if logit_weight is None:
        return logits
    return minmax(retrieval) + logit_weight * logits


def read_logit_weight(model_dir: Path) -> float | None:
    """The fitted blend weight in `model_dir`, or None (rank by the logits alone)."""
    path = model_dir / BLEND_FILE
    if not path.is_file():
        return None
    try:
        weight = json.loads(path.read_text())["logit_weight"]
        weight = None if weight is None else float(weight)
    except (ValueError, KeyError, TypeError) as exc:
        raise RerankerUnavailable(f'{path}: expected {{"logit_weight": number or null}} ({exc})') from None
    if weight is not None and not weight >= 0:
        raise RerankerUnavailable(f"{path}: logit_weight {weight} must be zero or more")
    return weight


def resolve_reranker(name: str) -> str:
    """Bundled model → its assembled folder; preset short name → hub id; else a hub id or path as given."""
    if name == bundled.NAME:
        return str(bundled.assemble())
    return PRESETS.get(name, name)


BACKENDS = ("torch", "torch-bf16", "onnx-int8")
# Batch per backend (bench/README.md): torch amortises its per-call overhead over length-sorted
# batches of 16 (bfloat16: 8). ONNX Runtime runs one pair per call, the calls side by side on the
# cores: with the 8-layer bundled model that was as fast as batches of 2 or faster (four bench runs:
# 2.94-3.35x LangChain against 2.86-3.19x; batches of 4: 2.17-2.62x) and ranked as well (rag eval,
# 300 questions: mean mrr@10 over the four sets 0.9279 against 0.9282); and as int8 scales the
# activations per call, a pair's score no longer depends on which other pair shares its batch.
DEFAULT_BATCH = {"torch": 16, "torch-bf16": 8, "onnx-int8": 1}


def resolve_backend(backend: str) -> str:
    """`fast` → the quickest backend measured accurate (onnx-int8); an unknown name is a clear error.

    int8, one pair per call side by side on the cores, beat bfloat16 even on this machine's AMX CPU
    (237-281 against 360-463 ms for 20 HotpotQA candidates, bench/README.md) and ranked within half a
    point of mrr@10 of it on each of the four evaluation sets (README), under the issue's 1-point limit.
    """
    if backend == "fast":
        return "onnx-int8"
    if backend not in BACKENDS:
        raise RagError(
            f"rerank backend '{backend}' is not one of {', '.join(BACKENDS)}, or fast (onnx-int8); fix "
            "RAG_RERANK_BACKEND"
        )
    return backend


class Reranker:
    def __init__(self, name: str, batch_size: int | None = None, max_length: int = 512, backend: str = "torch") -> None:
        import torch
        from sentence_transformers import CrossEncoder

        quiet_libraries()

        backend = resolve_backend(backend)  # before the slow load, so a typo fails at once
        self.name = name
        self.path = resolve_reranker(name)  # what loads: a hub id or a folder
        self.model_id = PRESETS.get(name, name)  # what is reported: the name given, presets as hub ids
        self.batch_size = batch_size or DEFAULT_BATCH.get(backend, 16)
        self.max_length = max_length
        try:
            self.model = load_model(CrossEncoder, self.path, device="cpu", max_length=max_length)
        except (OSError, ValueError) as exc:
            where = "local folder" if Path(self.path).exists() else "hub id"
            raise RerankerUnavailable(
                f"reranker '{name}' ({where} {self.path}) could not be loaded: "
                f"{str(exc).splitlines()[0].rstrip('.')}. Fix: download it once with network access (it is then "
                f"cached), point RAG_RERANKER at a local copy, use the bundled offline --reranker {bundled.NAME}, "
                "or --reranker none"
            ) from exc
        self.backend = backend
        self._onnx = None
        if backend == "torch-bf16":
            self.model.model.to(torch.bfloat16)
        if backend == "onnx-int8":
            from rag.models.onnx_int8 import OnnxScorer, export_int8

            self._onnx_path = export_int8(self.model.model, self.model.tokenizer)
            self._onnx = OnnxScorer(self._onnx_path, self.model.tokenizer, max_length)
        local = Path(self.path)
        self.logit_weight = read_logit_weight(local) if local.is_dir() else None

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Raw relevance logits for (query, passage) pairs, in the order of `passages`.

        Pairs are tokenized once and run in batches of similar token length (rag.rerank.pair_batches, the
        path the ONNX backend takes too), straight through the transformers model. CrossEncoder.predict
        tokenizes per batch and sorts by characters; this was ~4% faster with bfloat16 here.
        """
        if not passages:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, passage) for passage in passages]
        if self._onnx:
            return self._onnx.predict(pairs, self.batch_size)
        import torch

        scores = np.empty(len(passages), dtype=np.float32)
        with torch.inference_mode():
            for rows, batch in length_batches(self.model.tokenizer, pairs, self.max_length, self.batch_size):
                logits = self.model.model(**{name: torch.from_numpy(array) for name, array in batch.items()}).logits
                scores[rows] = logits.float().reshape(-1).numpy()
        return scores

    def order(self, hits: list[Hit]) -> list[Hit]:
        """Sort scored hits by their final score (ties keep retrieval order); sets `final_score`."""
        if not hits:
            return hits
        retrieval = np.array([h.retrieval_score for h in hits])
        logits = np.array([h.rerank_score or 0.0 for h in hits])
        for hit, final in zip(hits, blend(retrieval, logits, self.logit_weight), strict=True):
            hit.final_score = float(final)
        return sorted(hits, key=lambda h: -(h.final_score or 0.0))

    def rerank(self, query: str, hits: list[Hit], top_n: int | None = None) -> list[Hit]:
        """Score every hit, sort by final score, keep the best `top_n`."""
        raw = self.score(query, [hit.chunk.text for hit in hits])
        if len(raw):
            relative = np.exp(raw - raw.max())
            relative /= relative.sum()
            for hit, logit, rel in zip(hits, raw, relative):
                hit.rerank_score = float(logit)
                hit.rerank_prob = sigmoid(float(logit))
                hit.rerank_relative = float(rel)
        ranked = self.order(hits)
        return ranked if top_n is None else ranked[:top_n]


@lru_cache(maxsize=4)
def load_reranker(
    name: str, batch_size: int | None = None, max_length: int = 512, backend: str = "torch"
) -> Reranker | None:
    """None for `none`; cached so a chat session loads each model once."""
    if name.strip().lower() in NO_RERANK:
        return None
    return Reranker(name, batch_size, max_length, backend)


# What a reranker runs with when the settings leave it open: the bundled model was measured at
# 256 tokens with the fast backend, int8 ONNX (bench/README.md). Other models keep the safe torch
# path at 512, their fast-backend accuracy unmeasured.
MODEL_DEFAULTS = {bundled.NAME: {"backend": "fast", "max_length": 256}}
GENERIC_DEFAULTS = {"backend": "torch", "max_length": 512}


def reranker_options(settings: Settings, name: str) -> dict:
    """Batch size, max_length and backend for `name`: the settings where set, else the model's defaults."""
    preferred = MODEL_DEFAULTS.get(name, GENERIC_DEFAULTS)
    return {
        "batch_size": settings.rerank_batch_size,
        "max_length": settings.rerank_max_length or preferred["max_length"],
        "backend": resolve_backend(settings.rerank_backend or preferred["backend"]),
    }


def reranker_from(settings: Settings, name: str | None = None) -> Reranker | None:
    """The reranker `name` (default: the configured one) with its batch, length and backend."""
    name = name or settings.reranker
    return load_reranker(name, **reranker_options(settings, name))

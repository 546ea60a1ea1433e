"""Cross-encoder inference with ONNX Runtime and int8 weights: the fast path on a laptop CPU.

The model is exported once from its torch weights (torch.onnx, no optimum: optimum pins an older
transformers than sentence-transformers needs), its MatMul weights quantised to int8 per channel
(onnxruntime's dynamic quantisation; per-tensor scales moved trained logits by several units), and
cached by the weights' content hash, so later loads read the .onnx only. What it costs in ranking
accuracy is measured in bench/README.md.

The export traces transformers' eager attention, not its default SDPA: traced, SDPA leaves mask
handling (Where, IsNaN over the attention scores) that took ~19% of the int8 run time in ONNX
Runtime's profile, and the eager graph ran 20 HotpotQA candidates 1.3x faster (bench/README.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rag.pair_batches import INPUTS, length_batches
from rag.settings import cache_root

EXPORT_FORMAT = "eager-int8"  # part of the cached file's name: change it when the export changes


def _fingerprint(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def export_int8(model, tokenizer) -> Path:
    """The int8 ONNX file for a transformers sequence-classification `model` (built on first use)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = cache_root() / "onnx" / f"{_fingerprint(model)}.{EXPORT_FORMAT}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(f".{os.getpid()}.tmp")
    fp32 = target.with_suffix(f".{os.getpid()}.fp32.onnx")
    features = tokenizer(["query"] * 2, ["a passage"] * 2, padding=True, return_tensors="pt")
    names = [n for n in INPUTS if n in features]
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"logits": {0: "batch"}}
    model.eval()
    attention = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shapes that are constant for an encoder
            torch.onnx.export(
                model, tuple(features[n] for n in names), str(fp32), input_names=names, output_names=["logits"],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )  # fmt: skip
    finally:
        model.set_attn_implementation(attention)
    try:
        logging.disable(logging.WARNING)  # onnxruntime logs a pre-processing hint on the root logger
        try:
            quantize_dynamic(str(fp32), str(staging), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        staging.rename(target)
    finally:
        fp32.unlink(missing_ok=True)
        staging.unlink(missing_ok=True)
    return target


def cores() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count, where known)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class OnnxScorer:
    """Logits for (query, passage) pairs from an ONNX Runtime session.

    The batches run side by side, one per core, each single-threaded in the one shared session
    (`run` is thread-safe and releases the GIL). A small batch split across cores by ONNX
    Runtime's own thread pool syncs the threads at every one of the graph's few hundred ops; with
    the bundled 8-layer model on 2 cores, whole batches side by side reranked 20 HotpotQA
    candidates 1.2x faster (bench/README.md), with the same logits (each batch is the same
    computation either way).
    """

    def __init__(self, path: Path, tokenizer, max_length: int, workers: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = tuple(i.name for i in self.session.get_inputs())
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.workers = max(1, workers or cores())
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-onnx") if self.workers > 1 else None

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 1) -> np.ndarray:
        """Logits in the order of `pairs` (batches of similar length: rag.pair_batches)."""
        scores = np.empty(len(pairs), dtype=np.float32)
        batches = length_batches(self.tokenizer, pairs, self.max_length, batch_size, self.inputs)

        def run(batch: tuple[list[int], dict[str, np.ndarray]]) -> None:
            rows, feed = batch
            scores[rows] = self.session.run(None, feed)[0].reshape(-1)

        if self._pool is None:
            for batch in batches:
                run(batch)
        else:  # each free worker takes the next batch, so the cores stay evenly busy
            list(self._pool.map(run, batches))
        return scores

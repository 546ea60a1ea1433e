"""The local LLM on OpenVINO GenAI: the packaged GGUF, converted once to OpenVINO IR and reused.

Why: on this 2-core CPU the prompt is the cost of an answer, and OpenVINO reads prompts ~2.4x
faster than llama.cpp on the same Q4_K_M file (docs/answers.md). Its GGUF reader takes 15-20 s
per load, so the converted model (IR + tokenizer) is saved once into
`cache/rag/models/llm/openvino/<gguf sha256[:16]>-<openvino version>/` and later loads read that
(~4 s). The folder is built in a staging folder and renamed into place, with a manifest of every
file's size and sha256; a load re-checks the sizes, like the assembled GGUF's.

Precision: the CPU plugin's defaults on this machine (avx512_bf16) are bf16 inference, a u8 KV
cache and int8 dynamic quantization of activations. They stay: on the 28 docs_corpus questions
f32 inference answered 17 right against the default's 18 at ~2.5x the time, an f16 KV cache 19
(docs/answers.md).

Prefix caching: the system prompt (rules and examples, ~410 tokens) is the same for every
question, so its KV blocks are kept (a scheduler with `enable_prefix_caching` and a fixed pool of
KV blocks); measured here, a 411-token prompt's first token went from 4.4-5.4 s to 0.3 s once the
system prompt was cached.

Generation runs in a worker thread that feeds a queue, so the caller reads text as it is
written and can stop at any moment: closing the iterator makes the streamer answer CANCEL at
the next token, and the worker is joined before the next question (one pipeline, one question
at a time).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from rag.errors import RagError
from rag.models.checksum import file_sha256
from rag.models.local_llm import LocalModel

IR_FILES = (
    "openvino_model.xml",
    "openvino_model.bin",
    "openvino_tokenizer.xml",
    "openvino_tokenizer.bin",
    "openvino_detokenizer.xml",
    "openvino_detokenizer.bin",
)
MANIFEST = "manifest.json"
KV_BLOCK = 32  # tokens per KV block of OpenVINO's CPU paged attention
_DONE = object()


class OpenVINOUnavailable(RagError):
    """OpenVINO GenAI is not installed, or cannot read or convert this model."""


def _import():
    try:
        import openvino_genai
    except ImportError as exc:
        raise OpenVINOUnavailable(f"openvino-genai is not installed ({exc}): pip install openvino-genai") from exc
    return openvino_genai


def converted_dir(model: LocalModel, gguf: Path) -> Path:
    """Where the IR of `model` lives: keyed by the GGUF's published checksum and OpenVINO's version."""
    import openvino

    version = openvino.get_version().split("-")[0]
    return gguf.parent / "openvino" / f"{model.sha256[:16]}-{version}"


def _intact(folder: Path) -> bool:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
        return all((folder / name).stat().st_size == entry["size"] for name, entry in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def convert(model: LocalModel, gguf: Path) -> Path:
    """The converted IR folder of `gguf`, made once (staged, checksummed, renamed into place)."""
    target = converted_dir(model, gguf)
    if _intact(target):
        return target
    ov_genai = _import()
    staging = target.parent / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        (staging / gguf.name).symlink_to(gguf)  # the reader saves the IR beside the file it reads
        try:
            ov_genai.LLMPipeline(str(staging / gguf.name), "CPU", enable_save_ov_model=True)
        except Exception as exc:  # the reader raises RuntimeError, IndexError… on a file it cannot parse
            raise OpenVINOUnavailable(f"OpenVINO GenAI cannot read {gguf.name}: {_first_line(exc)}") from exc
        (staging / gguf.name).unlink()
        missing = [name for name in IR_FILES if not (staging / name).is_file()]
        if missing:
            raise OpenVINOUnavailable(f"OpenVINO GenAI did not save {', '.join(missing)} for {gguf.name}")
        files = {p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(staging.iterdir())}
        manifest = {"gguf_sha256": model.sha256, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _first_line(exc: BaseException) -> str:
    """OpenVINO's message without its source locations: the last non-empty line, shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:200]


class OpenVINOChat:
    """An OpenVINO GenAI LLMPipeline on one local model: chat messages in, text out as written."""

    engine = "openvino"

    def __init__(self, model: LocalModel, gguf: Path, threads: int, context: int) -> None:
        ov_genai = _import()
        self._ov = ov_genai
        folder = convert(model, gguf)
        scheduler = ov_genai.SchedulerConfig()
        scheduler.enable_prefix_caching = True
        scheduler.cache_size = 0  # sized by blocks instead: four context windows (~60 MB of u8 KV here)
        scheduler.num_kv_blocks = 4 * context // KV_BLOCK
        config = {"INFERENCE_NUM_THREADS": threads, "scheduler_config": scheduler}
        try:
            self.pipeline = ov_genai.LLMPipeline(str(folder), "CPU", **config)
        except Exception as exc:
            raise OpenVINOUnavailable(f"OpenVINO GenAI cannot load {folder}: {_first_line(exc)}") from exc
        self.tokenizer = self.pipeline.get_tokenizer()
        self.context = context
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        encoded = self.tokenizer.encode(text, add_special_tokens=False)
        return int(encoded.input_ids.get_shape()[-1])

    def prompt_tokens(self, messages: list[dict]) -> int:
        """Tokens of the whole prompt as the model reads it (chat template included)."""
        history = self._ov.ChatHistory(messages)
        return self.count_tokens(self.tokenizer.apply_chat_template(history, add_generation_prompt=True))

    def stream(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        usage: dict | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text as it is written; stop generating when the caller stops reading."""
        needed = self.prompt_tokens(messages) + max_tokens
        if needed > self.context:
            raise OpenVINOUnavailable(
                f"the prompt and answer need {needed} tokens, over the local LLM's window of {self.context} "
                "(RAG_LOCAL_LLM_CTX): lower RAG_LLM_CONTEXT_TOKENS or RAG_TOP_N"
            )
        config = self._ov.GenerationConfig(max_new_tokens=max_tokens, do_sample=temperature > 0)
        if temperature > 0:
            config.temperature = temperature
        if stop:
            config.stop_strings = set(stop)
        pieces: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def streamer(text: str):
            pieces.put(text)
            return self._ov.StreamingStatus.CANCEL if cancelled.is_set() else self._ov.StreamingStatus.RUNNING

        def run() -> None:
            try:
                result = self.pipeline.generate(self._ov.ChatHistory(messages), config, streamer)
                if usage is not None:
                    metrics = result.perf_metrics
                    usage["prompt_tokens"] = int(metrics.get_num_input_tokens())
                    usage["completion_tokens"] = int(metrics.get_num_generated_tokens())
                pieces.put(_DONE)
            except BaseException as exc:  # handed to the reading thread, which raises it
                pieces.put(exc)

        with self._lock:
            worker = threading.Thread(target=run, name="openvino-generate", daemon=True)
            worker.start()
            try:
                while (piece := pieces.get()) is not _DONE:
                    if isinstance(piece, BaseException):
                        raise OpenVINOUnavailable(f"OpenVINO GenAI failed while generating: {_first_line(piece)}")
                    if piece:
                        yield piece
            finally:
                cancelled.set()
                worker.join()

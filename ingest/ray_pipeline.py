"""`rag ingest --ray` / `--ray-address ADDRESS`: the ingest's reading, embedding and tokenizing as Ray Data.

`RayCompute` is an `ingest.writer.Compute`: the writer still decides what changed (file hashes vs
the store's files) and makes the one `Store.commit`; Ray only computes. Three Ray Data stages, each
returning its results to the driver in input order:

1. read: tasks run `SourceReader.outcome` (hash, compare with the known sha256, load, chunk) on
   batches of jobs: the function the local path calls, on the same jobs.
2. embed: an actor pool, each actor loading the embedder once (`load_embedder`) and embedding the
   batches `ingest.writer.embedding_batches` made (sorted by length, each cut by the ONNX encoder
   into calls of at most 512 padded tokens). The same batches as the local path, hence the same
   vectors. The driver sorts all new chunks before this stage, so reading ends before embedding
   starts: embedding is 60-80% of an ingest here (bench/ray_ingest.py), and equal vectors are
   worth more than the overlap.
3. tokenize: tasks computing the BM25 tokens (Kiwi) of the same texts.

Sources travel to the workers as values: a record carries its text, a file its path, so on a
cluster every node must see the files at the same path (a shared filesystem). The datasets hold
row numbers only; the jobs and texts reach the workers as task arguments, and results come back
as plain data: a read outcome as JSON, vectors as their raw float32 bytes.

`ray.init()` with no address starts a local Ray on this machine (its cores, at most `cpus`);
an address (`auto`, `ray://host:10001`) joins a running cluster and ships this code to it.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import ingest
import rag
from ingest.loaders import SkipFile
from ingest.writer import EmbedderSpec, NewDocument, Outcome, Progress, ReadJob, SourceReader, tokenize_joined
from rag.errors import RagError
from rag.models.onnx_int8 import cores
from rag.store import NewChunk

LOCAL = "local"  # `--ray` without `--ray-address`: start a Ray on this machine
READ_BATCH = 16  # sources per read task
TOKENIZE_BATCH = 256  # texts per tokenize task, as the local path groups them for Kiwi


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise RagError("--ray needs Ray: pip install 'rag[ray]' (or run the ingest without --ray)") from None
    return ray


def connect(address: str = LOCAL, cpus: int = 2, object_store_mb: int = 256) -> bool:
    """Start a local Ray or join the cluster at `address`; True when this call started it (the
    caller then shuts it down). A Ray already initialised in this process is used as is."""
    ray = _ray()
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)
    if address != LOCAL:
        _probe(address)
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address == LOCAL:
            code_root = str(Path(rag.__file__).resolve().parent.parent)  # workers import this code
            ray.init(
                num_cpus=cpus,
                object_store_memory=object_store_mb * 2**20,
                runtime_env={"env_vars": {"PYTHONPATH": code_root}},
                **common,
            )
        else:
            # the cluster runs this checkout's code, whatever version its nodes have installed
            modules = [str(Path(package.__file__).resolve().parent) for package in (rag, ingest)]
            ray.init(address=address, runtime_env={"py_modules": modules}, **common)
    except Exception as exc:  # ConnectionError, ValueError, RuntimeError: Ray's choice varies by cause
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _unreachable(address, reason) from None
    return True


def _unreachable(address: str, reason: str) -> RagError:
    return RagError(
        f"cannot join the Ray cluster at --ray-address {address!r}: {reason.rstrip('.')}. Give a running cluster's "
        "address ('auto' on one of its nodes, or ray://HEAD:10001), or --ray alone for a local Ray"
    )


def _probe(address: str) -> None:
    """Fail in seconds on a host:port nobody answers (Ray itself retries for a minute or more)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # `auto` and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise _unreachable(address, exc.strerror or str(exc) or "no answer") from None


def _quiet_data(ray) -> None:
    """No Ray Data progress bars or plan logs: the CLI draws its own progress."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a failure reaches the driver as a RagError


def _encode(outcome: Outcome) -> str:
    """A read outcome as JSON: unchanged (null), skipped with its reason, or the chunked document."""
    if outcome is None:
        return "null"
    if isinstance(outcome, SkipFile):
        return json.dumps({"skip": str(outcome)})
    fields = [outcome.path, outcome.sha256, outcome.size, outcome.title, outcome.chunks, outcome.note]
    return json.dumps({"document": fields})


def _decode(text: str) -> Outcome:
    value = json.loads(text)
    if value is None:
        return None
    if "skip" in value:
        return SkipFile(value["skip"])
    path, sha256, size, title, chunks, note = value["document"]
    return NewDocument(path, sha256, size, title, [NewChunk(*chunk) for chunk in chunks], note)


class _Embed:
    """One actor of the pool: loads the embedder once, then embeds the batches it is given by number."""

    def __init__(self, spec: EmbedderSpec, batches: list[list[str]]) -> None:
        from rag.models.embedder import load_embedder

        self.embedder = load_embedder(*spec, workers=1)  # the actor's one CPU: no threads fighting
        self.batches = batches

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = [self.embedder.embed_passages(self.batches[int(n)]).astype(np.float32) for n in batch["n"]]
        return {"n": batch["n"], "vectors": np.array([v.tobytes() for v in vectors], dtype=object)}


def _read(batch: dict[str, np.ndarray], reader: SourceReader, jobs: list[ReadJob]) -> dict[str, np.ndarray]:
    outcomes = [_encode(reader.outcome(jobs[int(n)])) for n in batch["n"]]
    return {"n": batch["n"], "outcome": np.array(outcomes, dtype=object)}


def _tokenize(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"n": batch["n"], "tokens": np.array(tokenize_joined(list(batch["text"])), dtype=object)}


class RayCompute:
    """The ingest's work on Ray (`connect` first); results come back to the driver in order."""

    def __init__(self) -> None:
        self.ray = _ray()
        _quiet_data(self.ray)

    def _run(self, dataset, column: str, stage: str, total: int, progress: Progress, size=lambda row: 1) -> list:
        """Stream `dataset`'s rows back as they finish, reporting `stage` progress; `column`'s
        values in row-number order."""
        found: dict[int, object] = {}
        done = 0
        progress(stage, 0, total)
        try:
            for row in dataset.iter_rows():
                found[int(row["n"])] = row[column]
                done += size(row)
                progress(stage, done, total)
        except self.ray.exceptions.RayError as exc:
            raise RagError(f"the Ray {stage} stage failed: {_cause(exc)}") from None
        return [found[n] for n in range(len(found))]

    def read(self, reader: SourceReader, jobs: list[ReadJob], progress: Progress) -> list[Outcome]:
        items = [{"n": n} for n in range(len(jobs))]
        dataset = self.ray.data.from_items(items).map_batches(_read, fn_args=(reader, jobs), batch_size=READ_BATCH)
        return [_decode(o) for o in self._run(dataset, "outcome", "reading", len(jobs), progress)]

    def embed(self, spec: EmbedderSpec, batches: list[list[str]], progress: Progress) -> list[np.ndarray]:
        actors = max(1, int(self.ray.available_resources().get("CPU", 1)))  # one per free CPU
        items = [{"n": n} for n in range(len(batches))]
        with warnings.catch_warnings():
            # Ray 2.60 deprecates passing actor options this way and offers no other yet. No
            # restarts: a dead actor fails the ingest (the live index stays) rather than coming back
            # with its arguments possibly gone from the object store (ray-project/ray#53727).
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
            dataset = self.ray.data.from_items(items).map_batches(
                _Embed,
                fn_constructor_args=(spec, batches),
                batch_size=1,
                num_cpus=1,
                concurrency=min(actors, len(batches)),
                max_restarts=0,
            )
        sizes = [len(b) for b in batches]
        found = self._run(dataset, "vectors", "embedding", sum(sizes), progress, size=lambda row: sizes[int(row["n"])])
        return [np.frombuffer(v, dtype=np.float32).reshape(len(b), -1) for v, b in zip(found, batches, strict=True)]

    def tokenize(self, texts: list[str], progress: Progress) -> list[str]:
        items = [{"n": n, "text": text} for n, text in enumerate(texts)]
        dataset = self.ray.data.from_items(items).map_batches(_tokenize, batch_size=TOKENIZE_BATCH)
        return [str(t) for t in self._run(dataset, "tokens", "tokenizing", len(texts), progress)]


_ERROR_LINE = re.compile(r"^(?:[\w]+\.)*(\w+(?:Error|Exception|Interrupt)): (.+)$")


def _cause(exc: BaseException) -> str:
    """The worker's own error on one line. Ray passes it back only as text (a traceback inside its
    own wrappers), so this is the last `Name: message` line that is not Ray's: the outermost of a
    chain (a RagError rather than the OSError it explains)."""
    found = [
        m for line in str(exc).splitlines() if (m := _ERROR_LINE.match(line.strip())) and not m[0].startswith("ray.")
    ]
    return f"{found[-1][1]}: {found[-1][2]}" if found else type(exc).__name__


@contextmanager
def ray_compute(address: str = LOCAL, cpus: int | None = None) -> Iterator[RayCompute]:
    """A `RayCompute` on a local Ray (at most `cpus` cores, default all this process may use) or the
    cluster at `address`; a Ray this call started is shut down after."""
    started = connect(address, cpus or cores())
    try:
        yield RayCompute()
    finally:
        if started:
            _ray().shutdown()

"""The index in Milvus, through pymilvus: Milvus Lite in-process for a `.db` path, a Milvus server or
cluster for an http:// URI, with the same client code.

One collection per generation, `NAME__g000007`, holds every chunk with its metadata as fields (path,
title, page, offsets, text, the file's sha256, size and ingest time), its dense vector (exact FLAT
search, inner product of normalised vectors: what the local store's FAISS index does) and a sparse
BM25 vector. The alias `NAME` names the live generation; the manifest is the collection's
`rag.manifest` property. An ingest writes a whole new generation (the live rows it keeps, the new
ones) and then moves the alias, one atomic operation on the server: an ingest that dies before that
leaves the alias, and so every reader, on the previous generation; the next ingest drops the
leftover. The generation before the live one is kept until the next commit, so a reader that opened
it (rag serve, mid-question) finishes its query.

Lexical half: Milvus's own BM25 function tokenizes with its analyzers; Milvus Lite's are `standard`
(\\w+ words, lower-cased) and `jieba` (Chinese), and on KorQuAD (bench/milvus_analyzer.py, 300
questions) `standard` scored mrr@10 0.847 against 0.958 for BM25 over our Kiwi morphemes. So the
sparse vectors are ours: a chunk's weights are BM25 over `rag.retrieve.lexical` tokens exactly as bm25s scores
them (Lucene IDF, k1 1.5, b 0.75), the query's are its token counts, and the inner product is the
BM25 score. IDF and average length are corpus statistics; every commit rewrites all rows, so every
generation's weights are computed from that generation's corpus and stay consistent as documents
come and go (the cost: a commit reads and writes the whole collection, as the local store rewrites
its BM25 index). Terms become sparse dimensions by a 32-bit hash (a collision merges two terms).

Writer lock: the collection `NAME__lock`, whose creation is atomic on the server; its properties
name the holder (host, pid, start). A holder on this host whose process is gone is stale and taken
over. Milvus Lite itself admits one process per `.db` folder at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag.errors import RagError
from rag.store import (
    FORMAT_VERSION,
    Changes,
    Committed,
    IndexBusy,
    IndexReader,
    Store,
    StoredChunk,
    StoredFile,
)

BM25_K1, BM25_B = 1.5, 0.75  # bm25s's defaults, which the local store uses
EMPTY_TERM = 0  # Milvus refuses an empty sparse row: a chunk with no token gets this, which no term maps to
MANIFEST_KEY = "rag.manifest"
LOCK_KEY = "rag.lock"
BATCH = 500
TIMEOUT = 10.0  # seconds to reach a server
SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")
_CHUNK_FIELDS = ["id", "path", "title", "page", "start", "end", "text", "ocr"]
_FILE_FIELDS = ["id", "path", "sha256", "size", "title", "ingested_at"]
_ROW_FIELDS = [*_CHUNK_FIELDS, "sha256", "size", "ingested_at", "tokens", "vector"]

_clients: dict[tuple[str, str], object] = {}
_clients_lock = threading.Lock()


def _is_lite(uri: str) -> bool:
    return not uri.startswith(SERVER_SCHEMES)


def _lite_in_use(uri: str) -> bool:
    """Whether another process holds the Milvus Lite folder (its own LOCK file, flock-ed while open)."""
    lock = Path(uri) / "LOCK"
    if not lock.is_file():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def connect(uri: str, token: str | None = None):
    """One pymilvus client per URI in this process (Milvus Lite runs one server per `.db` folder),
    or a one-line RagError naming what to fix."""
    try:
        from pymilvus import MilvusClient, MilvusException
    except ImportError:
        raise RagError("RAG_STORE=milvus needs pymilvus and milvus-lite: pip install 'rag[milvus]'") from None
    # pymilvus configures its loggers on import and logs every failed call, expected ones too (an
    # absent alias, a taken lock): this store turns the failures that matter into one-line errors
    # (and Milvus Lite's in-process gRPC server logs a traceback for each call it does not implement,
    # such as the timestamp pymilvus asks for before iterating, then falls back)
    for name in ("pymilvus", "pymilvus.milvus_client", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    key = (uri, token or "")
    with _clients_lock:
        if key in _clients:
            return _clients[key]
        if _is_lite(uri):
            if not uri.endswith(".db"):
                raise RagError(
                    f"RAG_MILVUS_URI={uri!r}: give a Milvus Lite path ending in .db (a folder it creates), "
                    "or a server URI such as http://localhost:19530"
                )
            try:
                import milvus_lite  # noqa: F401 (pymilvus imports it for a .db path; a clear error here)
            except ImportError:
                raise RagError(f"RAG_MILVUS_URI={uri!r} runs Milvus Lite: pip install 'rag[milvus]'") from None
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            if _lite_in_use(uri):
                raise IndexBusy(
                    f"the Milvus Lite index {uri} is open in another process (a rag serve or ingest): Milvus Lite "
                    "serves one process at a time; stop that one, or run a Milvus server (RAG_MILVUS_URI=http://…)"
                )
        # pymilvus pings every 10 s; Milvus Lite's in-process server allows no pings between calls and
        # answers with GOAWAY "too_many_pings" (logged by gRPC) after a long embedding: none on loopback
        options = {"grpc.keepalive_time_ms": 2**31 - 1} if _is_lite(uri) else {}
        try:
            client = MilvusClient(uri=uri, token=token or "", timeout=TIMEOUT, grpc_options=options)
        except MilvusException as exc:
            raise RagError(
                f"cannot reach Milvus at RAG_MILVUS_URI={uri!r} ({exc.message}): start the server or fix the URI"
            ) from None
        _clients[key] = client
        return client


def release(uri: str, token: str | None = None) -> None:
    """Close this process's client for `uri` and, for Milvus Lite, stop its in-process server, so
    another process may open the folder."""
    with _clients_lock:
        client = _clients.pop((uri, token or ""), None)
    if client is not None:
        client.close()
    if _is_lite(uri):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def release_all() -> None:
    """`release` every URI this process opened."""
    for uri, token in list(_clients):
        release(uri, token or None)


def term_id(token: str) -> int:
    """A term's sparse dimension: 32 bits of its BLAKE2b hash, never EMPTY_TERM."""
    value = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little")
    return value or 1


class CorpusStats:
    """Document frequencies and lengths of one generation's chunks: BM25's corpus statistics."""

    def __init__(self) -> None:
        self.df: Counter[int] = Counter()
        self.docs = 0
        self.length = 0

    def add(self, tokens: list[str]) -> None:
        self.df.update({term_id(t) for t in tokens})
        self.docs += 1
        self.length += len(tokens)

    def weights(self, tokens: list[str]) -> dict[int, float]:
        """The chunk's BM25 weight per term, as bm25s's Lucene variant scores it."""
        if not tokens:
            return {EMPTY_TERM: 1.0}
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(tokens) / (self.length / self.docs))
        out = {}
        for term, tf in Counter(term_id(t) for t in tokens).items():
            idf = math.log(1 + (self.docs - self.df[term] + 0.5) / (self.df[term] + 0.5))
            out[term] = idf * tf / (tf + norm)
        return out


def query_vector(tokens: list[str]) -> dict[int, float]:
    """Token counts: their inner product with a chunk's weights is its BM25 score."""
    return {term: float(n) for term, n in Counter(term_id(t) for t in tokens).items()}


def _present(described: dict, fields: list[str]) -> list[str]:
    """The fields a collection has: one written before a field was added (`ocr`) lacks it, and
    reads as the field's default."""
    names = {f["name"] for f in described.get("fields", [])}
    return [name for name in fields if name in names]


def _generation_number(name: str) -> int:
    return int(name.rsplit("__g", 1)[1])


class MilvusReader(IndexReader):
    """One generation's collection (not the alias, so one question never mixes two generations)."""

    def __init__(self, client, collection: str, location: str) -> None:
        self.client, self.collection, self.location = client, collection, location
        client.load_collection(collection)  # a no-op when loaded; Milvus Lite reopens collections released
        described = client.describe_collection(collection)
        self.manifest = json.loads(described.get("properties", {})[MANIFEST_KEY])
        self._check_format()
        self._fields = _present(described, _CHUNK_FIELDS)

    def __len__(self) -> int:
        return int(self.manifest["chunks"])

    def _search(self, data, field: str, k: int) -> list[tuple[int, float]]:
        found = self.client.search(
            self.collection,
            data=[data],
            anns_field=field,
            limit=min(k, len(self)),
            output_fields=["id"],
            search_params={"metric_type": "IP"},
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if len(self) == 0 or k <= 0:
            return []
        return self._search(query_vector.astype(np.float32).tolist(), "vector", k)

    def lexical_search(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        if len(self) == 0 or not tokens or k <= 0:
            return []
        return [(i, s) for i, s in self._search(query_vector(tokens), "sparse", k) if s > 0]

    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        rows = self.client.get(self.collection, ids=list(ids), output_fields=self._fields)
        return {row["id"]: StoredChunk(**{name: row[name] for name in self._fields}) for row in rows}


class MilvusStore(Store):
    def __init__(self, uri: str, name: str, token: str | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,180}", name):
            raise RagError(f"RAG_MILVUS_COLLECTION={name!r}: use letters, digits and underscores, not first a digit")
        self.uri, self.name, self.token = uri, name, token
        self.location = f"{uri} (collection {name})"
        self.client = connect(uri, token)

    # -- reading

    def generation(self) -> str | None:
        from pymilvus import MilvusException

        try:
            return self.client.describe_alias(self.name)["collection_name"]
        except MilvusException:
            return None

    def manifest(self) -> dict | None:
        live = self.generation()
        return MilvusReader(self.client, live, self.location).manifest if live else None

    def reader(self) -> MilvusReader:
        live = self.generation()
        if live is None:
            raise RagError(f"no index at {self.location}: run `rag ingest FOLDER --store milvus` first")
        return MilvusReader(self.client, live, self.location)

    def _rows(self, collection: str, fields: list[str]) -> Iterator[dict]:
        self.client.load_collection(collection)
        iterator = self.client.query_iterator(collection, batch_size=BATCH, filter="id > 0", output_fields=fields)
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def files(self) -> list[StoredFile]:
        live = self.generation()
        if live is None:
            return []
        found: dict[str, dict] = {}
        for row in self._rows(live, _FILE_FIELDS):
            found.setdefault(row["path"], row | {"ids": []})["ids"].append(row["id"])
        return [
            StoredFile(path, f["sha256"], f["size"], f["title"], f["ingested_at"], tuple(sorted(f["ids"])))
            for path, f in sorted(found.items())
        ]

    # -- writing

    @contextmanager
    def lock(self) -> Iterator[None]:
        lock = f"{self.name}__lock"
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": _now()}
        if not self._create_lock(lock, holder):
            current = self._lock_holder(lock)
            if not _stale(current):
                raise IndexBusy(
                    f"another ingest (pid {current.get('pid', '?')} on {current.get('host', '?')}, since "
                    f"{current.get('since', '?')}) is writing to {self.location}: wait for it to finish"
                )
            self.client.drop_collection(lock)  # its process is gone
            if not self._create_lock(lock, holder):
                raise IndexBusy(f"another ingest took the lock of {self.location} just now: wait for it to finish")
        try:
            yield
        finally:
            self.client.drop_collection(lock)

    def _create_lock(self, lock: str, holder: dict) -> bool:
        """Create the lock collection; False when it exists (Milvus refuses a second one atomically)."""
        from pymilvus import DataType, MilvusException

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one vector field
        try:
            self.client.create_collection(lock, schema=schema, properties={LOCK_KEY: json.dumps(holder)})
        except MilvusException as exc:
            if "exist" in str(exc.message):
                return False
            raise
        return True

    def _lock_holder(self, lock: str) -> dict:
        properties = self.client.describe_collection(lock).get("properties", {})
        return json.loads(properties.get(LOCK_KEY, "{}"))

    def _generations(self) -> list[str]:
        prefix = f"{self.name}__g"
        return sorted(c for c in self.client.list_collections() if c.startswith(prefix))

    def _drop_generations(self, keep: set[str]) -> None:
        for collection in self._generations():
            if collection not in keep:
                self.client.drop_collection(collection)

    def clean(self) -> None:
        """Drop generations a crashed ingest left, and older ones; the live one and the one before stay."""
        live = self.generation()
        if live is None:
            self._drop_generations(set())
            return
        previous = f"{self.name}__g{_generation_number(live) - 1:06d}"
        self._drop_generations({live, previous})

    def _create_generation(self, collection: str, dimension: int, manifest: dict) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        for text in ("path", "title", "text", "tokens"):
            schema.add_field(text, DataType.VARCHAR, max_length=65535)
        schema.add_field("page", DataType.INT64, nullable=True)
        schema.add_field("ocr", DataType.BOOL)
        for number in ("start", "end", "size"):
            schema.add_field(number, DataType.INT64)
        schema.add_field("sha256", DataType.VARCHAR, max_length=80)  # and UNREAD_MARK
        schema.add_field("ingested_at", DataType.VARCHAR, max_length=32)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="IP")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        self.client.create_collection(
            collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",  # a question right after an ingest sees all of it
            properties={MANIFEST_KEY: json.dumps(manifest, ensure_ascii=False)},
        )

    def commit(self, changes: Changes) -> Committed:
        import pymilvus

        live = self.generation()
        previous = MilvusReader(self.client, live, self.location).manifest if live else None
        number = _generation_number(live) + 1 if live else 1
        collection = f"{self.name}__g{number:06d}"
        next_id = previous["next_id"] if previous else 1
        done = Committed()

        # pass 1: the corpus statistics of the new generation (kept rows, then new ones)
        stats, paths = CorpusStats(), set()
        if live:
            for row in self._rows(live, ["id", "path", "tokens"]):
                if row["path"] in changes.drop:
                    done.chunks_removed += 1
                else:
                    stats.add(row["tokens"].split())
                    paths.add(row["path"])
        for tokens in changes.tokens:
            stats.add(tokens.split())
        paths |= {d.path for d in changes.documents}
        done.chunks_added = len(changes.tokens)
        done.chunks_total, done.files_total = stats.docs, len(paths)
        dimension = previous["dimension"] if previous else int(changes.vectors.shape[1])
        manifest = changes.manifest | {
            "format_version": FORMAT_VERSION,
            "store": "milvus",
            "dimension": dimension,
            "metric": "cosine (inner product of normalised vectors); BM25 as sparse inner product",
            "bm25": {"k1": BM25_K1, "b": BM25_B, "idf": "lucene", "terms": "blake2b-32 of rag.retrieve.lexical tokens"},
            "chunks": done.chunks_total,
            "files": done.files_total,
            "next_id": next_id + done.chunks_added,
            "versions": changes.manifest.get("versions", {}) | {"pymilvus": pymilvus.__version__},
        }

        # pass 2: write the generation, then move the alias to it
        self._create_generation(collection, dimension, manifest)
        try:
            batch: list[dict] = []
            for row in self._kept_rows(live, changes.drop) if live else ():
                batch.append(row | {"sparse": stats.weights(row["tokens"].split())})
                if len(batch) == BATCH:
                    self.client.insert(collection, batch)
                    batch = []
            for row in self._new_rows(changes, next_id):
                batch.append(row | {"sparse": stats.weights(row["tokens"].split())})
                if len(batch) == BATCH:
                    self.client.insert(collection, batch)
                    batch = []
            if batch:
                self.client.insert(collection, batch)
            self.client.flush(collection)
            if live:
                self.client.alter_alias(collection, self.name)
            else:
                self.client.create_alias(collection, self.name)
        except BaseException:
            self._drop_quietly(collection)
            raise
        self._drop_generations({collection, live} if live else {collection})
        return done

    def _drop_quietly(self, collection: str) -> None:
        """Best effort: an ingest stopped by Ctrl-C or an error removes its unfinished generation;
        if that fails too, the next ingest's `clean` does it."""
        with suppress(Exception):  # the original failure is what the user must see
            self.client.drop_collection(collection)

    def _kept_rows(self, live: str, drop: set[str]) -> Iterator[dict]:
        fields = _present(self.client.describe_collection(live), _ROW_FIELDS)
        for row in self._rows(live, fields):
            if row["path"] not in drop:
                yield {"ocr": False} | row

    @staticmethod
    def _new_rows(changes: Changes, next_id: int) -> Iterator[dict]:
        now = _now()
        n = 0
        for document in changes.documents:
            for page, start, end, text, ocr in document.chunks:
                yield {
                    "id": next_id + n,
                    "path": document.path,
                    "title": document.title,
                    "page": page,
                    "ocr": ocr,
                    "start": start,
                    "end": end,
                    "text": text,
                    "sha256": document.sha256,
                    "size": document.size,
                    "ingested_at": now,
                    "tokens": changes.tokens[n],
                    "vector": changes.vectors[n].astype(np.float32).tolist(),
                }
                n += 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stale(holder: dict) -> bool:
    """A lock whose holder ran on this host and is gone; one held from another host is never
    judged from here (remove its `NAME__lock` collection by hand once that ingest is known dead)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

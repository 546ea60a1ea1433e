"""`rag ingest --ray`: the same index as the local path, on both stores (real Ray, one local
instance for the session: `ray_address`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.writer import IndexWriter, Record
from rag.errors import RagError
from rag.store import open_store
from tests.conftest import CORPUS, ROOT, make_settings
from tests.test_store import indexed, store_of, top_source

pytest.importorskip("ray")


def ray_ingest(index_dir: Path, *paths: Path, **overrides):
    from ingest.ray_pipeline import RayCompute

    return IndexWriter(make_settings(index_dir, **overrides), compute=RayCompute()).ingest(list(paths))


@pytest.fixture(scope="module")
def ray_corpus_stores(ray_address, tmp_path_factory):
    """docs_corpus ingested with Ray into each store."""
    from rag.store.milvus import release

    stores = {}
    for kind in ("local", "milvus"):
        index = tmp_path_factory.mktemp(f"ray-corpus-{kind}")
        ray_ingest(index, CORPUS, store=kind)
        stores[kind] = open_store(make_settings(index, store=kind))
    yield stores
    release(stores["milvus"].uri)


@pytest.mark.parametrize("kind", ["local", "milvus"])
@pytest.mark.parametrize("retriever", ["dense", "bm25", "hybrid"])
def test_ray_ingest_ranks_docs_corpus_like_the_local_path(
    ray_corpus_stores, corpus_index, corpus_questions, kind, retriever
):
    """Same top-5 chunk ids and scores as the plain ingest into the local store, every question:
    the same batches embedded give the same vectors."""
    from rag.retrieve.retrievers import open_retriever

    plain = open_retriever(retriever, open_store(make_settings(corpus_index)))
    ray = open_retriever(retriever, ray_corpus_stores[kind])
    for question in corpus_questions:
        ours, theirs = plain.retrieve(question["question"], 5), ray.retrieve(question["question"], 5)
        assert [h.chunk for h in theirs] == [h.chunk for h in ours], question["question"]
        assert [h.retrieval_score for h in theirs] == pytest.approx([h.retrieval_score for h in ours], rel=1e-4)


def test_ray_ingest_adds_replaces_prunes_and_reports_skips(folder, index_dir, store_kind, ray_address):
    first = ray_ingest(index_dir, folder)
    assert first.files_seen == 3 and len(first.ingested) == 3 and first.chunks_added == 3
    before = indexed(index_dir)
    assert ray_ingest(index_dir, folder).unchanged == 3
    (folder / "fees.txt").write_text("Printing costs 50 won per page in black and white.", encoding="utf-8")
    (folder / "hours.md").unlink()
    (folder / "parking.txt").write_text("Parking is free for two hours.", encoding="utf-8")
    (folder / "blob.txt").write_bytes(b"\x00\x01binary")
    report = ray_ingest(index_dir, folder)
    assert sorted(Path(p).name for p in report.ingested) == ["fees.txt", "parking.txt"]
    assert [Path(p).name for p in report.removed] == ["hours.md"] and report.unchanged == 1
    assert [(Path(p).name, "binary" in why) for p, why in report.skipped] == [("blob.txt", True)]
    assert (report.chunks_added, report.chunks_removed, report.chunks_total) == (2, 2, 3)
    after = indexed(index_dir)
    assert set(after) == {"fees.txt", "parking.txt", "대출.txt"} and after["대출.txt"] == before["대출.txt"]
    assert top_source(index_dir, "How much does printing cost?") == "fees.txt"
    assert top_source(index_dir, "Where can I park?") == "parking.txt"


def test_ray_ingest_of_records_matches_the_plain_path(tmp_path, ray_address):
    from ingest.ray_pipeline import RayCompute

    records = [Record("a", "Late fees are 100 won per day.", "Fees"), Record("b", "대출 기간은 14일입니다.", "대출")]
    plain = IndexWriter(make_settings(tmp_path / "plain")).ingest_records(records)
    ray = IndexWriter(make_settings(tmp_path / "ray"), compute=RayCompute()).ingest_records(records)
    assert (ray.ingested, ray.chunks_added) == (plain.ingested, plain.chunks_added)
    stores = [store_of(tmp_path / name) for name in ("plain", "ray")]
    ids = [i for f in stores[0].files() for i in f.chunk_ids]
    assert ids == [i for f in stores[1].files() for i in f.chunk_ids]
    plain_vectors, ray_vectors = (store.reader().vectors.reconstruct_batch(ids) for store in stores)
    assert (plain_vectors == ray_vectors).all()  # bit for bit


KILLED_RAY_INGEST = """
import os, signal, sys
from pathlib import Path

import faiss

from ingest.ray_pipeline import ray_compute
from ingest.writer import IndexWriter
from rag.settings import Settings


def dying(real):  # Ray has computed everything; the driver dies writing the new generation
    def write(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return write


faiss.write_index = dying(faiss.write_index)
with ray_compute(sys.argv[3]) as compute:
    IndexWriter(Settings(index_dir=Path(sys.argv[1])), compute=compute).ingest([Path(sys.argv[2])])
"""


def test_a_killed_ray_ingest_leaves_the_previous_generation_answering(folder, index_dir, ray_address):
    """A driver that joined the cluster (`--ray-address`) is SIGKILLed mid-commit: readers keep
    the old generation, and the next Ray ingest finishes the job. (The local store: the commit is
    the same code whatever computed the changes, and test_store kills it mid-write on both stores.)"""
    ray_ingest(index_dir, folder)
    before, generation = indexed(index_dir), store_of(index_dir).generation()
    (folder / "fees.txt").write_text("Printing costs 50 won per page in black and white.", encoding="utf-8")
    (folder / "hours.md").unlink()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RAY_INGEST, str(index_dir), str(folder), ray_address],
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # with the RAY_AUTH_MODE Ray's start set
    )
    assert killed.returncode == -signal.SIGKILL
    assert store_of(index_dir).generation() == generation
    assert indexed(index_dir) == before
    assert top_source(index_dir, "How much is the late fee?") == "fees.txt"
    report = ray_ingest(index_dir, folder)
    assert [Path(p).name for p in report.ingested] == ["fees.txt"]
    assert [Path(p).name for p in report.removed] == ["hours.md"]
    assert top_source(index_dir, "How much does printing cost?") == "fees.txt"


def test_a_failing_worker_is_one_line_and_changes_nothing(folder, index_dir, ray_address):
    with pytest.raises(RagError, match=r"the Ray embedding stage failed: RagError: cannot load embedder '/no/model'"):
        ray_ingest(index_dir, folder, embedder="/no/model")
    assert store_of(index_dir).generation() is None


def test_cli_ingest_with_ray_and_its_errors(folder, tmp_path, ray_address, monkeypatch):
    from typer.testing import CliRunner

    from rag.cli import app

    runner, index = CliRunner(), str(tmp_path / "index")
    done = runner.invoke(app, ["ingest", str(folder), "--index", index, "--ray"])
    assert done.exit_code == 0 and "files seen 3, ingested 3" in done.output and "chunks added 3" in done.output
    unreachable = subprocess.run(  # a process of its own: this one has the session's Ray
        [
            sys.executable,
            "-m",
            "rag.cli",
            "ingest",
            str(folder),
            "--index",
            index,
            "--ray-address",
            "ray://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert "cannot join the Ray cluster at --ray-address 'ray://127.0.0.1:9': Connection refused" in unreachable.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    missing = runner.invoke(app, ["ingest", str(folder), "--index", index, "--ray"])
    assert missing.exit_code == 1 and "--ray needs Ray: pip install 'rag[ray]'" in missing.output

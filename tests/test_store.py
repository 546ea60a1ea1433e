"""The index in either store: incremental add/replace/prune, crash safety, the writer lock, embedder
checks. Tests that take `store_kind` run on the local store and on Milvus Lite alike."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from ingest.writer import IndexWriter
from rag.errors import RagError
from rag.models.embedder import Embedder
from rag.retrieve.retrievers import DenseRetriever
from rag.store import Store, open_store
from rag.store.local import CHUNKS_DB, live_generation
from tests.conftest import CORPUS, DOCS, ROOT, make_settings

SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # a child imports the code under test


def ingest(index_dir: Path, *paths: Path, **overrides):
    return IndexWriter(make_settings(index_dir, **overrides)).ingest(list(paths))


def store_of(index_dir: Path) -> Store:
    return open_store(make_settings(index_dir))


def indexed(index_dir: Path) -> dict[str, list[int]]:
    """source file name -> chunk ids, as the query side sees them."""
    store = store_of(index_dir)
    reader, files = store.reader(), store.files()
    ids = [i for f in files for i in f.chunk_ids]
    assert len(reader) == len(ids) and set(reader.chunks(ids)) == set(ids)  # every listed chunk is there
    reader.close()
    return {Path(f.path).name: list(f.chunk_ids) for f in files}


def top_source(index_dir: Path, question: str) -> str:
    return Path(DenseRetriever.open(store_of(index_dir)).retrieve(question, 1)[0].source).name


def test_first_ingest_indexes_every_file(folder, index_dir, store_kind):
    report = ingest(index_dir, folder)
    assert report.files_seen == 3 and len(report.ingested) == 3 and report.chunks_added == 3
    assert set(indexed(index_dir)) == {"fees.txt", "hours.md", "대출.txt"}
    assert top_source(index_dir, "How much is the late fee?") == "fees.txt"


def test_second_ingest_skips_unchanged_files(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    before = indexed(index_dir)
    report = ingest(index_dir, folder)
    assert report.unchanged == 3 and report.ingested == [] and report.chunks_added == 0
    assert indexed(index_dir) == before


def test_changed_file_is_replaced_and_vanished_file_pruned(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    before = indexed(index_dir)
    (folder / "fees.txt").write_text("Printing costs 50 won per page in black and white.", encoding="utf-8")
    (folder / "hours.md").unlink()
    report = ingest(index_dir, folder)
    after = indexed(index_dir)
    assert [Path(p).name for p in report.ingested] == ["fees.txt"]
    assert [Path(p).name for p in report.removed] == ["hours.md"]
    assert report.chunks_removed == 2 and report.chunks_added == 1
    assert "hours.md" not in after
    assert after["대출.txt"] == before["대출.txt"]  # untouched file keeps its chunks
    assert after["fees.txt"] != before["fees.txt"]
    assert top_source(index_dir, "How much does printing cost?") == "fees.txt"


def test_ingesting_another_folder_keeps_the_first(folder, index_dir, tmp_path, store_kind):
    other = tmp_path / "other"
    other.mkdir()
    (other / "parking.txt").write_text("Parking is free for two hours.", encoding="utf-8")
    ingest(index_dir, folder)
    ingest(index_dir, other)
    assert set(indexed(index_dir)) == {"fees.txt", "hours.md", "대출.txt", "parking.txt"}


def test_changed_chunk_settings_rechunk_everything(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    report = ingest(index_dir, folder, chunk_size=40, chunk_overlap=0)
    assert len(report.ingested) == 3 and report.chunks_added > 3


def test_an_index_written_before_the_ocr_column_is_read_and_migrated_by_its_next_ingest(folder, index_dir):
    ingest(index_dir, folder)
    db = sqlite3.connect(live_generation(index_dir) / CHUNKS_DB)
    with db:
        db.execute("ALTER TABLE chunks DROP COLUMN ocr")  # as the last release wrote it
    db.close()
    assert top_source(index_dir, "How much is the late fee?") == "fees.txt"
    (folder / "fees.txt").write_text("Late fees are 200 won per day per book.", encoding="utf-8")
    assert ingest(index_dir, folder).ingested == [str(folder / "fees.txt")]
    db = sqlite3.connect(live_generation(index_dir) / CHUNKS_DB)
    assert db.execute("SELECT COUNT(*), SUM(ocr) FROM chunks").fetchone() == (3, 0)
    db.close()
    assert set(indexed(index_dir)) == {"fees.txt", "hours.md", "대출.txt"}


def test_a_milvus_collection_written_before_the_ocr_field_is_read_and_its_rows_carried_over(
    folder, index_dir, monkeypatch
):
    from rag.store import milvus

    monkeypatch.setenv("RAG_STORE", "milvus")
    with monkeypatch.context() as old_release:  # fault injection: the schema and rows of the last release
        create, new_rows = milvus.MilvusStore._create_generation, milvus.MilvusStore._new_rows

        def without_ocr(self, collection, dimension, manifest):
            real = self.client.create_schema

            def schema(**kwargs):
                made = real(**kwargs)
                add = made.add_field
                made.add_field = lambda name, *a, **k: None if name == "ocr" else add(name, *a, **k)
                return made

            self.client.create_schema = schema
            try:
                create(self, collection, dimension, manifest)
            finally:
                del self.client.create_schema

        old_release.setattr(milvus.MilvusStore, "_create_generation", without_ocr)
        old_release.setattr(
            milvus.MilvusStore,
            "_new_rows",
            staticmethod(
                lambda changes, next_id: (
                    {k: v for k, v in r.items() if k != "ocr"} for r in new_rows(changes, next_id)
                )
            ),
        )
        ingest(index_dir, folder)
    try:
        store = store_of(index_dir)
        fields = {f["name"] for f in store.client.describe_collection(store.generation())["fields"]}
        assert "ocr" not in fields and "page" in fields
        assert top_source(index_dir, "How much is the late fee?") == "fees.txt"
        (folder / "hours.md").write_text("# Hours\n\nThe library opens at 10 on weekdays.", encoding="utf-8")
        assert ingest(index_dir, folder).ingested == [str(folder / "hours.md")]
        assert set(indexed(index_dir)) == {"fees.txt", "hours.md", "대출.txt"}  # old rows kept, with ocr False
        reader = store_of(index_dir).reader()
        assert not any(chunk.ocr for chunk in reader.chunks(list(range(1, 10))).values())
    finally:
        milvus.release_all()


def test_skipped_files_are_reported_with_reasons(folder, index_dir, monkeypatch):
    (folder / "blob.txt").write_bytes(b"\x00\x01binary")
    (folder / "empty.md").write_text("")
    (folder / "big.txt").write_text("x" * 2_000_000)
    (folder / "locked.txt").write_text("secret")
    (folder / ".hidden.txt").write_text("never seen")
    real_read = Path.read_bytes

    def read_bytes(self):  # fault injection: root can read any file, so simulate EACCES
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    report = ingest(index_dir, folder, max_file_mb=1)
    reasons = {Path(p).name: why for p, why in report.skipped}
    assert set(reasons) == {"blob.txt", "empty.md", "big.txt", "locked.txt"}
    assert "binary" in reasons["blob.txt"] and "empty" in reasons["empty.md"]
    assert "too large" in reasons["big.txt"] and "RAG_MAX_FILE_MB" in reasons["big.txt"]
    assert "unreadable" in reasons["locked.txt"] and "Permission denied" in reasons["locked.txt"]
    assert report.files_seen == 7 and len(report.ingested) == 3


def test_a_file_that_becomes_unreadable_leaves_the_index(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    (folder / "fees.txt").write_bytes(b"\x00\x00garbage")
    report = ingest(index_dir, folder)
    assert "fees.txt" not in indexed(index_dir)
    assert [Path(p).name for p in report.removed] == ["fees.txt"]


def test_cp949_file_and_folder_names_are_decoded_indexed_and_pruned(folder, index_dir, store_kind):
    """Names a Korean zip made on Windows leaves behind: cp949 bytes, not UTF-8, on a Linux disk."""
    legacy = folder / os.fsdecode("옛 자료".encode("cp949"))
    legacy.mkdir()
    name = legacy / os.fsdecode("반납안내.txt".encode("cp949"))
    name.write_text("연체료는 하루에 한 권당 100원입니다.", encoding="utf-8")
    report = ingest(index_dir, folder)
    assert not report.skipped and report.files_seen == 4
    shown = str(folder / "옛 자료" / "반납안내.txt")
    assert shown in report.ingested
    reader = store_of(index_dir).reader()
    assert {c.title for c in reader.chunks(indexed(index_dir)["반납안내.txt"]).values()} == {"반납안내"}
    assert top_source(index_dir, "연체료는 하루에 얼마인가요?") == "반납안내.txt"
    assert ingest(index_dir, folder).unchanged == 4  # the decoded name is a stable key
    name.unlink()
    assert ingest(index_dir, folder).removed == [shown]


def test_undecodable_long_and_newline_names_are_ingested(folder, index_dir, store_kind):
    odd = {
        os.fsdecode(b"\xff\xfe-raw.txt"): "Raw bytes name: room 3 is for group study.",
        "가" * 80 + ".txt": "A 244-byte name: the reading room has 40 seats.",
        "two\nlines.md": "# Printing\n\nPrinting costs 50 won a page.",
    }
    for name, text in odd.items():
        (folder / name).write_text(text, encoding="utf-8")
    report = ingest(index_dir, folder)
    assert not report.skipped and len(report.ingested) == 6
    assert {"\\xff\\xfe-raw.txt", "가" * 80 + ".txt", "two\nlines.md"} <= set(indexed(index_dir))
    assert top_source(index_dir, "How much does printing cost?") == "two\nlines.md"


def test_a_file_that_vanishes_mid_ingest_is_skipped_and_pruned(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    (folder / "fees.txt").write_text("Late fees are now 200 won per day.")

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "reading" and done == 1:  # after the walk listed it, before it is read
            (folder / "ko" / "대출.txt").unlink()

    report = IndexWriter(make_settings(index_dir), progress).ingest([folder])
    assert [(Path(p).name, why) for p, why in report.skipped] == [
        ("대출.txt", "unreadable (No such file or directory)")
    ]
    assert [Path(p).name for p in report.removed] == ["대출.txt"]
    assert set(indexed(index_dir)) == {"fees.txt", "hours.md"}
    assert top_source(index_dir, "How much are late fees per day?") == "fees.txt"


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_crash_or_ctrl_c_mid_ingest_leaves_the_previous_index_usable(
    folder, index_dir, monkeypatch, failure, store_kind
):
    ingest(index_dir, folder)
    before = indexed(index_dir)
    generation = store_of(index_dir).generation()
    (folder / "fees.txt").write_text("Completely new content about the reading room.", encoding="utf-8")
    (folder / "new.txt").write_text("A brand new document about parking.", encoding="utf-8")

    def fail(self, texts):  # fault injection in the middle of the write
        raise failure

    with monkeypatch.context() as patch, pytest.raises(type(failure)):
        patch.setattr(Embedder, "embed", fail)
        ingest(index_dir, folder)
    assert store_of(index_dir).generation() == generation
    assert indexed(index_dir) == before
    assert top_source(index_dir, "How much is the late fee?") == "fees.txt"
    report = ingest(index_dir, folder)  # the next run picks up the pending changes
    assert sorted(Path(p).name for p in report.ingested) == ["fees.txt", "new.txt"]
    assert not [p for p in os.listdir(index_dir) if p.startswith(".tmp-")]


def test_crash_during_commit_leaves_no_trace(folder, index_dir, monkeypatch):
    ingest(index_dir, folder)
    before = indexed(index_dir)
    (folder / "new.txt").write_text("A brand new document about parking.", encoding="utf-8")
    import faiss

    def broken_write(index, path):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space"):
        patch.setattr(faiss, "write_index", broken_write)
        ingest(index_dir, folder)
    assert indexed(index_dir) == before
    assert sorted(p for p in os.listdir(index_dir) if not p.startswith(".lock")) == ["CURRENT", "gen-000001"]


def test_second_writer_gets_a_clear_error(folder, index_dir, store_kind):
    with store_of(index_dir).lock(), pytest.raises(RagError, match=r"another ingest .* is writing to"):
        ingest(index_dir, folder)
    ingest(index_dir, folder)  # lock released: works again


def test_lock_dies_with_its_process(folder, index_dir):
    import subprocess
    import sys

    code = "import sys,time; from rag.store.local import writer_lock; from pathlib import Path\n"
    code += "with writer_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(index_dir)], stdout=subprocess.PIPE, text=True, env=SUBPROCESS_ENV
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RagError, match=f"pid {holder.pid}"):
            ingest(index_dir, folder)
    finally:
        holder.kill()
        holder.wait()
    assert ingest(index_dir, folder).chunks_added == 3  # a killed ingest never blocks the next one


def test_ingest_with_another_embedder_is_refused(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    with pytest.raises(RagError, match="was built with embedder 'multilingual-e5-small', not 'BAAI/bge-m3'"):
        ingest(index_dir, folder, embedder="BAAI/bge-m3")


def test_query_with_another_embedder_is_refused(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    with pytest.raises(RagError, match=r"built with embedder .* but the query would use 'BAAI/bge-m3'"):
        DenseRetriever.open(store_of(index_dir), "BAAI/bge-m3")


def test_missing_and_empty_index_get_clear_errors(tmp_path, store_kind):
    with pytest.raises(RagError, match=r"no index at .*rag ingest"):
        DenseRetriever.open(store_of(tmp_path / "nowhere"))
    empty = tmp_path / "empty-src"
    empty.mkdir()
    ingest(tmp_path / "idx", empty)
    with pytest.raises(RagError, match="is empty"):
        DenseRetriever.open(store_of(tmp_path / "idx"))


def test_missing_path_is_a_clear_error(index_dir, tmp_path):
    with pytest.raises(RagError, match="no such file or folder"):
        ingest(index_dir, tmp_path / "typo")


def test_index_files_are_sqlite_faiss_json_and_plain_numpy(folder, index_dir):
    import numpy as np

    ingest(index_dir, folder)
    generation = live_generation(index_dir)
    files = sorted(str(p.relative_to(generation)) for p in generation.rglob("*") if p.is_file())
    assert {"chunks.sqlite", "manifest.json", "vectors.faiss", "bm25_ids.npy"} <= set(files)
    assert {Path(f).suffix for f in files} == {".sqlite", ".json", ".faiss", ".npy"}
    for npy in generation.rglob("*.npy"):
        np.load(npy, allow_pickle=False)  # raises if any array needed unpickling
    with sqlite3.connect(generation / CHUNKS_DB) as db:
        row = db.execute("SELECT title, text FROM chunks WHERE path LIKE '%hours.md'").fetchone()
    assert row == ("Hours", DOCS["hours.md"])
    manifest = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"] == "multilingual-e5-small" and manifest["chunks"] == 3
    assert manifest["embed_backend"] == "onnx-int8" and manifest["prefixes"]["passage"] == "passage: "


def test_chunk_metadata_keeps_source_title_and_offsets(folder, index_dir, store_kind):
    ingest(index_dir, folder)
    reader = store_of(index_dir).reader()
    chunk = next(iter(reader.chunks(indexed(index_dir)["hours.md"]).values()))
    source_text = Path(chunk.path).read_text(encoding="utf-8")
    assert chunk.title == "Hours" and chunk.page is None
    assert source_text[chunk.start : chunk.end] == chunk.text
    assert reader.manifest["chunker"]["size"] == 700 and reader.manifest["dimension"] == 384


def test_records_ingest_incrementally_and_prune_what_is_gone(index_dir, store_kind):
    from ingest.writer import Record

    records = [Record("a", "Late fees are 100 won per day.", "Fees"), Record("b", "Parking is free.", "Parking")]
    first = IndexWriter(make_settings(index_dir)).ingest_records(records)
    assert first.chunks_added == 2 and set(indexed(index_dir)) == {"a", "b"}
    again = IndexWriter(make_settings(index_dir)).ingest_records(records)
    assert again.unchanged == 2 and again.chunks_added == 0
    changed = [Record("a", "Printing costs 50 won per page.", "Fees"), Record("c", "Open at 9.", "Hours")]
    third = IndexWriter(make_settings(index_dir)).ingest_records(changed)
    assert sorted(third.ingested) == ["a", "c"] and third.removed == ["b"]
    assert set(indexed(index_dir)) == {"a", "c"}


def test_an_index_embedded_without_e5_prefixes_is_refused_by_name(folder, index_dir):
    """An index made before the prefixes (or by another tool) lives in another space for e5."""
    ingest(index_dir, folder, embedder="sentence-transformers/all-MiniLM-L6-v2")
    manifest_path = live_generation(index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["prefixes"] == {"query": "", "passage": ""}  # MiniLM was trained without any
    del manifest["prefixes"]
    manifest["embedder"] = "multilingual-e5-small"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(RagError, match="passage prefix '', this rag embeds 'multilingual-e5-small' with 'passage: '"):
        DenseRetriever.open(index_dir)
    with pytest.raises(RagError, match=r"without the prefixes .* use a new --index folder"):
        ingest(index_dir, folder, embedder="multilingual-e5-small")


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("multilingual-e5-small", ("query: ", "passage: ")),
        ("intfloat/multilingual-e5-large", ("query: ", "passage: ")),
        ("intfloat/e5-base-v2", ("query: ", "passage: ")),
        ("sentence-transformers/all-MiniLM-L6-v2", ("", "")),
        ("BAAI/bge-m3", ("", "")),
        ("/models/resnet50", ("", "")),
    ],
)
def test_e5_models_get_their_prefixes(model_id, expected):
    from rag.models.embedder import prefixes

    assert prefixes(model_id) == expected


KILL_MID_COMMIT = """
import os, signal, sys
from pathlib import Path

import faiss
import pymilvus

from ingest.writer import IndexWriter
from rag.settings import Settings


def dying(real):  # the write happens, then the process is killed before the switch
    def write(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return write


faiss.write_index = dying(faiss.write_index)
pymilvus.MilvusClient.insert = dying(pymilvus.MilvusClient.insert)
IndexWriter(Settings(index_dir=Path(sys.argv[1]))).ingest([Path(sys.argv[2])])
"""


def test_a_killed_ingest_leaves_the_previous_generation_answering(folder, index_dir, store_kind):
    """SIGKILL in the middle of writing the new generation (FAISS file written; Milvus rows
    inserted, the alias not yet moved): readers keep the old one, the next ingest finishes the job."""
    import subprocess
    import sys

    ingest(index_dir, folder)
    before, generation = indexed(index_dir), store_of(index_dir).generation()
    if store_kind == "milvus":
        from rag.store.milvus import release_all

        release_all()  # Milvus Lite serves one process at a time: let the killed one open it
    (folder / "fees.txt").write_text("Printing costs 50 won per page in black and white.", encoding="utf-8")
    (folder / "hours.md").unlink()
    killed = subprocess.run(
        [sys.executable, "-c", KILL_MID_COMMIT, str(index_dir), str(folder)], check=False, env=SUBPROCESS_ENV
    )
    assert killed.returncode == -9
    assert store_of(index_dir).generation() == generation
    assert indexed(index_dir) == before
    assert top_source(index_dir, "How much is the late fee?") == "fees.txt"
    report = ingest(index_dir, folder)  # a dead writer's lock and half-written generation are no obstacle
    assert [Path(p).name for p in report.ingested] == ["fees.txt"] and [Path(p).name for p in report.removed] == [
        "hours.md"
    ]
    assert top_source(index_dir, "How much does printing cost?") == "fees.txt"


@pytest.fixture(scope="module")
def both_corpus_stores(corpus_index, milvus_corpus_index):
    return open_store(make_settings(corpus_index)), open_store(make_settings(milvus_corpus_index, store="milvus"))


@pytest.mark.parametrize("retriever", ["dense", "bm25", "hybrid"])
def test_milvus_ranks_docs_corpus_like_the_local_store(both_corpus_stores, corpus_questions, retriever):
    """Same chunk ids, same order, same scores (float32) for every docs_corpus question."""
    from rag.retrieve.retrievers import open_retriever

    local, milvus = (open_retriever(retriever, store) for store in both_corpus_stores)
    for question in corpus_questions:
        ours, theirs = local.retrieve(question["question"], 5), milvus.retrieve(question["question"], 5)
        assert [h.chunk for h in theirs] == [h.chunk for h in ours], question["question"]
        assert [h.retrieval_score for h in theirs] == pytest.approx([h.retrieval_score for h in ours], rel=1e-4)


def test_milvus_settings_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_STORE", "milvus")
    with pytest.raises(RagError, match=r"RAG_MILVUS_URI='.*notes': give a Milvus Lite path ending in \.db"):
        open_store(make_settings(tmp_path, milvus_uri=str(tmp_path / "notes")))
    with pytest.raises(RagError, match=r"cannot reach Milvus at RAG_MILVUS_URI='http://127.0.0.1:9'"):
        open_store(make_settings(tmp_path, milvus_uri="http://127.0.0.1:9"))
    with pytest.raises(RagError, match="RAG_MILVUS_COLLECTION='my-index'"):
        open_store(make_settings(tmp_path, milvus_collection="my-index"))
    with pytest.raises(RagError, match="RAG_STORE='chroma': choose one of local, milvus"):
        open_store(make_settings(tmp_path, store="chroma"))


def test_milvus_lite_open_in_another_process_is_named(tmp_path):
    import subprocess
    import sys

    uri = str(tmp_path / "milvus.db")
    code = "import sys,time; from pymilvus import MilvusClient; MilvusClient(sys.argv[1]); print('open', flush=True)\n"
    code += "time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(RagError, match=r"is open in another process .* Milvus Lite serves one process at a time"):
            open_store(make_settings(tmp_path, store="milvus"))
    finally:
        holder.kill()
        holder.wait()


def test_cli_ingest_and_ask_with_the_milvus_store(tmp_path, folder):
    """`--store milvus` end to end through the CLI (ask without an LLM: its sources and the error)."""
    from typer.testing import CliRunner

    from rag.cli import app
    from rag.store.milvus import release_all

    runner, index = CliRunner(), str(tmp_path / "index")
    ingested = runner.invoke(app, ["ingest", str(folder), "--index", index, "--store", "milvus"])
    assert ingested.exit_code == 0 and "chunks added 3" in ingested.output and "collection rag" in ingested.output
    asked = runner.invoke(
        app,
        ["ask", "How much is the late fee?", "--index", index, "--store", "milvus", "--reranker", "none", "--json"],
        env={"RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1", "RAG_LLM_MODEL": "none", "RAG_LLM_MAX_RETRIES": "0"},
    )
    assert asked.exit_code == 1 and '"source":' in asked.output and "fees.txt" in asked.output
    bad = runner.invoke(app, ["ask", "x", "--store", "milvus"], env={"RAG_MILVUS_URI": "/nowhere/notes"})
    assert bad.exit_code == 1 and "ending in .db" in bad.output and "Traceback" not in bad.output
    release_all()


def test_cli_eval_with_the_milvus_store_scores_like_the_local_store(tmp_path, monkeypatch):
    """`rag eval --store milvus` on docs_corpus builds its own Milvus Lite index in the eval cache and
    measures what `--store local` measures: every arm's retrieval metrics within 0.005."""
    from typer.testing import CliRunner

    from rag.cli import app
    from rag.store.milvus import release

    cache = tmp_path / "eval-cache"
    monkeypatch.setenv("RAG_EVAL_CACHE_DIR", str(cache))  # real indexes, built here, not in ~/.cache
    arms = ["--retriever", "dense,bm25,hybrid", "--reranker", "none", "--candidates", "5"]
    reports = {}
    try:
        for kind in ("milvus", "local"):
            args = ["eval", str(CORPUS), "--store", kind, *arms, "--out", str(tmp_path / kind)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
            reports[kind] = json.loads((tmp_path / kind / "report.json").read_text(encoding="utf-8"))
    finally:
        for db in cache.glob("*/milvus.db"):
            release(str(db))  # Milvus Lite's in-process server for the evaluation index
    built = sorted(p.name for p in cache.iterdir())
    assert len(built) == 2 and built[1] == built[0] + "-milvus"  # one evaluation index per store
    assert (cache / built[1] / "milvus.db").is_dir() and (cache / built[0] / "CURRENT").is_file()
    assert {kind: r["settings"]["store"] for kind, r in reports.items()} == {"milvus": "milvus", "local": "local"}
    runs = {kind: {(r["retriever"], r["reranker"], r["candidates"]): r["metrics"] for r in report["runs"]}
            for kind, report in reports.items()}  # fmt: skip
    assert set(runs["milvus"]) == set(runs["local"]) == {(r, "none", 5) for r in ("dense", "bm25", "hybrid")}
    for arm, local in runs["local"].items():
        milvus = runs["milvus"][arm]
        assert set(milvus) == set(local) and {"hit@1", "hit@5", "mrr@5"} <= set(local)
        assert local["mrr@5"] > 0.5, arm  # a real ranking, not two empty ones
        for metric, value in local.items():
            assert milvus[metric] == pytest.approx(value, abs=0.005), (arm, metric)
    # docs_corpus is easy (bm25 and hybrid score 1.0 on both): the question-by-question scores agree too
    per_question = {kind: {r["retriever"]: r["per_question"] for r in reports[kind]["runs"]} for kind in reports}
    assert per_question["milvus"] == per_question["local"]

"""The Milvus store over the network: `RAG_MILVUS_URI=http://…`, the client code a Milvus cluster gets.

No Milvus server or cluster can run here (no Docker; PyPI's `milvus` 2.3.5 standalone predates the
sparse vectors our lexical half needs), so the server is milvus-lite's own gRPC server
(`milvus-lite server`), a separate process speaking Milvus's protocol on a loopback port. Unlike an
index file (Milvus Lite in-process serves one process at a time), a server is shared: an ingest in
one process commits while a reader in another (a `rag serve` replica) keeps answering and then
follows the switch, and a second writer in another process is refused.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.writer import IndexWriter
from rag.errors import RagError
from rag.store import open_store
from tests.conftest import ROOT, make_settings
from tests.test_serve import _free_port

SERVER = Path(sys.executable).parent / "milvus-lite"


@pytest.fixture(scope="module")
def milvus_url(tmp_path_factory) -> Iterator[str]:
    if not SERVER.exists():
        pytest.skip(f"needs milvus-lite's server command at {SERVER} (pip install 'rag[milvus]')")
    port = _free_port()
    data = tmp_path_factory.mktemp("milvus-server")
    command = [str(SERVER), "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, f"milvus-lite server exited: {server.stderr.read()}"
            assert time.monotonic() < deadline, "milvus-lite server did not open its port in 60 s"
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    from rag.store.milvus import release_all

    release_all()
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def on_server(milvus_url, monkeypatch, request) -> str:
    """This test's collection on the shared server, chosen by the environment a child process inherits."""
    monkeypatch.setenv("RAG_STORE", "milvus")
    monkeypatch.setenv("RAG_MILVUS_URI", milvus_url)
    monkeypatch.setenv("RAG_MILVUS_COLLECTION", request.node.name.replace("-", "_")[:60])
    return milvus_url


def _child(code: str, *args: str) -> subprocess.Popen:
    """Python in a process of its own (a second machine, as far as the server can tell), speaking by lines."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


# a `rag serve` replica: for each question line, follow any new generation, print the top source's name
REPLICA = """
import sys
from pathlib import Path
from rag.pipeline import Pipeline
from rag.settings import Settings

replica = Pipeline(Settings(index_dir=Path(sys.argv[1]), reranker="none"))
print("ready", flush=True)
for question in sys.stdin:
    refreshed = replica.refresh()
    hits = replica.retriever.retrieve(question.strip(), 5)
    print(refreshed, *[Path(h.source).name for h in hits], sep="|", flush=True)
"""

LOCK_HOLDER = """
import sys
from pathlib import Path
from rag.settings import Settings
from rag.store import open_store

with open_store(Settings(index_dir=Path(sys.argv[1]))).lock():
    print("locked", flush=True)
    sys.stdin.readline()
"""


def _ask(replica: subprocess.Popen, question: str) -> tuple[bool, list[str]]:
    replica.stdin.write(question + "\n")
    replica.stdin.flush()
    refreshed, *sources = replica.stdout.readline().strip().split("|")
    return refreshed == "True", sources


def test_a_serving_process_answers_from_what_another_process_ingests(on_server, folder, tmp_path):
    settings = make_settings(tmp_path / "unused")
    report = IndexWriter(settings).ingest([folder])
    assert report.chunks_added == 3 and on_server in report.index
    replica = _child(REPLICA, str(tmp_path / "unused"))
    try:
        assert replica.stdout.readline().strip() == "ready"
        refreshed, sources = _ask(replica, "How much is the late fee?")
        assert not refreshed and sources[0] == "fees.txt"

        (folder / "parking.md").write_text("# Parking\n\nThe car park is on basement level two.", encoding="utf-8")
        (folder / "hours.md").unlink()
        report = IndexWriter(settings).ingest([folder])
        assert report.chunks_added == 1 and [Path(p).name for p in report.removed] == ["hours.md"]

        refreshed, sources = _ask(replica, "Where is the car park?")  # follows this process's commit
        assert refreshed and sources[0] == "parking.md" and "hours.md" not in sources
    finally:
        replica.kill()
        replica.wait()


def test_a_second_writer_in_another_process_is_refused(on_server, folder, tmp_path):
    holder = _child(LOCK_HOLDER, str(tmp_path / "unused"))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RagError, match=r"another ingest .* is writing to"):
            IndexWriter(make_settings(tmp_path / "unused")).ingest([folder])
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(RagError, match="no index at"):
        open_store(make_settings(tmp_path / "unused")).reader()  # the refused ingest wrote nothing
    assert IndexWriter(make_settings(tmp_path / "unused")).ingest([folder]).chunks_added == 3

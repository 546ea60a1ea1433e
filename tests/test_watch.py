"""`rag ingest FOLDER --watch` as a user runs it: the real CLI in its own process, real file events
(inotify), the real embedder and index; the index read back from this process as `rag serve` would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag.models.embedder import packaged_minilm_path
from rag.store import open_store
from tests.conftest import ROOT, make_settings

MINILM = packaged_minilm_path()


class Watcher:
    """A running `rag ingest --watch`, its output collected line by line."""

    def __init__(self, folder: Path, index: Path, embedder: Path | None = MINILM) -> None:
        # the packaged MiniLM embeds by default: what is under test is the following, not the embedder
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
        if embedder is not None:
            env["RAG_EMBEDDER"] = str(embedder)
        command = [sys.executable, "-m", "rag.cli", "ingest", str(folder), "--watch", "--index", str(index)]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def rounds(self) -> list[str]:
        return [line for line in self.lines if re.match(r"^\d\d:\d\d:\d\d ingested", line)]

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.process.poll() is None, "the watcher ended:\n" + "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n" + "\n".join(self.lines)
            time.sleep(0.2)


@pytest.fixture
def watcher(folder: Path, index_dir: Path) -> Iterator[Watcher]:
    running = Watcher(folder, index_dir)
    running.wait_for("start", lambda: any("watching 1 folder" in line for line in running.lines))
    yield running
    if running.process.poll() is None:
        running.process.kill()


def indexed(index_dir: Path) -> dict[str, str]:
    """Each indexed file's path relative to the folder, and its text."""
    store = open_store(make_settings(index_dir))
    reader = store.reader()
    out = {}
    for f in store.files():
        out[Path(f.path).name] = " ".join(c.text for c in reader.chunks(list(f.chunk_ids)).values())
    reader.close()
    return out


def test_created_changed_renamed_and_deleted_files_follow_the_folder(watcher: Watcher, folder: Path, index_dir: Path):
    assert set(indexed(index_dir)) == {"fees.txt", "hours.md", "대출.txt"}
    (folder / "parking.md").write_text("# Parking\n\nThe car park is free for two hours.", encoding="utf-8")
    watcher.wait_for("new file", lambda: "parking.md" in indexed(index_dir))

    (folder / "parking.md").write_text("# Parking\n\nThe car park is free for three hours.", encoding="utf-8")
    watcher.wait_for("changed text", lambda: "three hours" in indexed(index_dir).get("parking.md", ""))

    (folder / "parking.md").rename(folder / "car-park.md")
    watcher.wait_for("rename", lambda: {"car-park.md"} <= set(indexed(index_dir)) - {"parking.md"})
    assert "parking.md" not in indexed(index_dir)

    (folder / "fees.txt").unlink()
    watcher.wait_for("deletion", lambda: "fees.txt" not in indexed(index_dir))

    import shutil

    shutil.rmtree(folder / "ko")  # a folder gone: its documents leave the index with it
    watcher.wait_for("folder deletion", lambda: "대출.txt" not in indexed(index_dir))
    assert set(indexed(index_dir)) == {"hours.md", "car-park.md"}


def test_a_burst_of_100_files_is_one_commit_and_hidden_or_lock_files_are_ignored(
    watcher: Watcher, folder: Path, index_dir: Path
):
    before = len(watcher.rounds())
    burst = folder / "burst"
    burst.mkdir()
    for i in range(100):
        (burst / f"note{i:03}.txt").write_text(f"Note {i}: room {i} is on floor {i % 7}.", encoding="utf-8")
    (folder / ".draft.txt").write_text("a hidden draft", encoding="utf-8")
    (folder / "~$report.docx").write_bytes(b"\x00lock file of an open Word document")
    watcher.wait_for("the burst", lambda: sum(name.startswith("note") for name in indexed(index_dir)) == 100)
    time.sleep(2.5)  # room for any further round the burst might (wrongly) cause
    rounds = watcher.rounds()[before:]
    assert len(rounds) == 1 and rounds[0].split()[1:3] == ["ingested", "100,"], rounds
    assert not {".draft.txt", "~$report.docx"} & set(indexed(index_dir))
    assert not any(line.strip().startswith("skipped") for line in watcher.lines), watcher.lines


def test_a_file_written_slowly_is_read_once_when_complete(watcher: Watcher, folder: Path, index_dir: Path):
    before = len(watcher.rounds())
    with (folder / "minutes.txt").open("w", encoding="utf-8") as out:
        for part in range(6):  # 2.4 s of writing, never quiet for a whole second
            out.write(f"Minute {part}: the board agreed item {part}. ")
            out.flush()
            time.sleep(0.4)
        out.write("The meeting closed at 17:00.")
    watcher.wait_for("the finished file", lambda: "minutes.txt" in indexed(index_dir))
    time.sleep(2.5)
    assert "closed at 17:00" in indexed(index_dir)["minutes.txt"]
    ingested = [line for line in watcher.lines if line.strip().startswith("ingested") and "minutes.txt" in line]
    assert len(ingested) == 1 and len(watcher.rounds()) == before + 1, watcher.lines


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_ends_the_watch_with_the_index_committed(watcher: Watcher, folder: Path, index_dir, how):
    (folder / "late.md").write_text("# Late\n\nAdded just before the stop.", encoding="utf-8")
    watcher.wait_for("the last file", lambda: "late.md" in indexed(index_dir))
    watcher.process.send_signal(how)
    assert watcher.process.wait(timeout=60) == 0, watcher.lines
    time.sleep(0.2)
    assert any("stopped, index committed" in line for line in watcher.lines), watcher.lines
    assert not any("Traceback" in line for line in watcher.lines)
    assert "late.md" in indexed(index_dir)

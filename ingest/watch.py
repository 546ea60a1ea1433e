"""Keep an index in step with folders: `rag ingest PATH... --watch`.

watchfiles (Rust `notify`: inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows)
reports paths created, modified, deleted and renamed (a rename is the old path gone and the new one
created). Changes are gathered until the folders have been quiet for `quiet` seconds; a path whose
file was modified less than `quiet` seconds ago waits for the next round, so a file still being
written (a copy in progress, a save in several writes) is read once, complete. Everything that
settled goes to `IndexWriter.update` together: a burst of 100 files is one ingest and one commit,
and a running `rag serve` answers from the new generation on its next request.

What is watched is what `rag ingest` reads: files with a type ingest.loaders knows, not hidden
(no part of the path under the root starts with "."), not Office's `~$` lock files. A deleted path
of any kind counts: it may have been a folder, whose documents all leave the index.

Stopping: `stop` (set by SIGINT or SIGTERM in the CLI) ends the watch between rounds; a round in
progress finishes its commit first. Changes seen but not yet settled are left for the next ingest,
which finds them by their hashes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ingest.loaders import LOADERS
from ingest.writer import IndexWriter, IngestReport
from rag.errors import RagError

MAX_ROUND_MS = 10_000  # a folder that never goes quiet is still ingested this often


def watched(path: Path, roots: list[Path]) -> bool:
    """Whether a change at `path` can matter to the index."""
    root = next((r for r in roots if path == r or r in path.parents), None)
    if root is None:
        return False
    parts = path.relative_to(root).parts
    if any(part.startswith(".") for part in parts) or path.name.startswith("~$"):
        return False
    return not path.exists() or path.is_dir() or path.suffix.lower() in LOADERS


def settled(path: Path, quiet: float, now: float) -> bool:
    """Gone, or not modified for `quiet` seconds."""
    try:
        return now - path.stat().st_mtime >= quiet
    except OSError:
        return True


def follow(
    writer: IndexWriter,
    roots: list[Path],
    on_round: Callable[[IngestReport], None],
    on_error: Callable[[str], None],
    stop: threading.Event,
    quiet: float = 1.0,
) -> set[Path]:
    """Ingest each settled round of changes under `roots` until `stop` is set; returns the changes
    seen but not ingested when it stopped. A round the index refuses (another ingest holds it) is
    reported to `on_error` and tried again on the next wake-up."""
    import watchfiles

    roots = [r.resolve() for r in roots]
    quiet_ms = max(int(quiet * 1000), 50)
    pending: set[Path] = set()
    for changes in watchfiles.watch(
        *roots,
        watch_filter=lambda _change, path: watched(Path(path), roots),
        step=quiet_ms,
        debounce=MAX_ROUND_MS,
        rust_timeout=quiet_ms,  # wake up while quiet too, to ingest what has settled since
        yield_on_timeout=True,
        stop_event=stop,
        raise_interrupt=False,
    ):
        pending |= {Path(path) for _, path in changes}
        now = time.time()
        ready = sorted(p for p in pending if settled(p, quiet, now))
        if ready and not stop.is_set():
            try:
                report = writer.update(ready)
            except RagError as exc:  # e.g. another ingest holds the index: try again next round
                on_error(f"{exc}; retrying")
                continue
            pending -= set(ready)
            on_round(report)
    return pending

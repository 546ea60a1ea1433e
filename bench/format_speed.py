"""Files/s for HWP and HWPX: reading alone, and a whole ingest (read, chunk, embed, commit).

The files are the real HWP 5 / HWPX documents under tests/data/hwp (or a folder you name), read
`--repeat` times by ingest.loaders for the reading rate, then copied `--copies` times into a temporary
folder and ingested into a new index with the default settings for the end-to-end rate.

    python bench/format_speed.py [FOLDER] [--repeat 20] [--copies 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.loaders import SkipFile, load_file  # noqa: E402
from ingest.writer import IndexWriter  # noqa: E402
from rag.quiet import quiet_libraries  # noqa: E402
from rag.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT / "tests" / "data" / "hwp")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--copies", type=int, default=5)
    args = parser.parse_args()
    quiet_libraries()
    files = sorted(p for p in args.folder.iterdir() if p.suffix in (".hwp", ".hwpx"))
    print("| format | files | MB | read files/s | read MB/s | skipped (locked) |")
    print("|---|---|---|---|---|---|")
    for suffix in (".hwp", ".hwpx"):
        chosen = [(p, p.read_bytes()) for p in files if p.suffix == suffix]
        skipped = 0
        started = time.perf_counter()
        for _ in range(args.repeat):
            for path, data in chosen:
                try:
                    load_file(path, data, 50 * 2**20)
                except SkipFile:
                    skipped += 1
        seconds = time.perf_counter() - started
        size = sum(len(d) for _, d in chosen) / 2**20
        rate = len(chosen) * args.repeat / seconds
        print(
            f"| {suffix} | {len(chosen)} | {size:.2f} | {rate:.0f} | {size * args.repeat / seconds:.1f} "
            f"| {skipped // args.repeat} |"
        )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        for copy in range(args.copies):
            (folder / str(copy)).mkdir(parents=True)
            for path in files:
                shutil.copy(path, folder / str(copy) / path.name)
        settings = Settings(index_dir=Path(tmp) / "index", reranker="none")
        report = IndexWriter(settings).ingest([folder])
        print(
            f"\ningest of {report.files_seen} files ({len(report.ingested)} read, {len(report.skipped)} skipped): "
            f"{report.seconds:.1f} s, {report.files_seen / report.seconds:.1f} files/s, "
            f"{report.chunks_added} chunks ({report.chunks_added / report.seconds:.1f} chunks/s)"
        )


if __name__ == "__main__":
    main()

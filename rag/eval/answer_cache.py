"""Generated answers kept on disk, so an interrupted `rag eval --generate` resumes where it stopped.

One JSON-lines file per dataset and corpus, append-only and written out after every answer: a crash
loses at most the line being written, and a line cut short is skipped when the file is read back.
No pickle: a cache file from someone else is data, never code.

An answer's key covers everything that decides it: the question, the arm (retriever, reranker,
candidate count), the passages in the order the LLM sees them, and the generation fingerprint
(prompt version, model, top_n, context budget, max tokens, temperature), and for a passage the
injection guard flags, the guard's version. Change any of them and the old answer is not reused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.generation import guard
from rag.retrieve.hits import Hit


@dataclass(frozen=True)
class CachedAnswer:
    text: str
    first_token_ms: float | None
    generate_ms: float
    prompt_tokens: int | None = None  # as the engine counted them, when it told


def answer_key(question: str, arm: str, passages: Sequence[str], fingerprint: str) -> str:
    """sha256 over the question, the arm, each passage's hash in order, and the generation fingerprint."""
    hashed = [hashlib.sha256(text.encode()).hexdigest() for text in passages]
    payload = json.dumps([question, arm, hashed, fingerprint], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def passages_of(hits: Sequence[Hit]) -> list[str]:
    """What the prompt shows of each passage (title, page and text), for `answer_key`; a passage the
    injection guard flags also carries the guard's version, since what the model reads of it depends
    on the rules (the others' keys, and so every answer cached over them, stay as they were)."""
    return [
        f"{h.chunk.title}\x1f{h.chunk.page}\x1f{h.chunk.text}"
        + (f"\x1fguard {guard.VERSION}" if guard.addresses_assistant(h.chunk.text) else "")
        for h in hits
    ]


def cache_path(answers_dir: Path, dataset_name: str, corpus_key: str) -> Path:
    safe = re.sub(r"[^\w.-]+", "_", dataset_name)
    return answers_dir / f"{safe}-{corpus_key}.jsonl"


class AnswerCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._answers: dict[str, CachedAnswer] = {}
        self._needs_newline = False
        if path.exists():
            data = path.read_bytes()
            self._needs_newline = bool(data) and not data.endswith(b"\n")
            for line in data.decode("utf-8", errors="replace").splitlines():
                self._read_line(line)

    def _read_line(self, line: str) -> None:
        """Keep a well-formed record; skip anything else (the torn last line of an interrupted run)."""
        try:
            row = json.loads(line)
            first_token = row["first_token_ms"]
            tokens = row.get("prompt_tokens")
            answer = CachedAnswer(
                str(row["text"]),
                None if first_token is None else float(first_token),
                float(row["generate_ms"]),
                None if tokens is None else int(tokens),
            )
            self._answers[str(row["key"])] = answer
        except (ValueError, KeyError, TypeError):
            pass

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> CachedAnswer | None:
        return self._answers.get(key)

    def put(self, key: str, answer: CachedAnswer, **context: str) -> None:
        """Append one answer; the file is closed, so flushed, after each. `context` (question id, arm)
        is stored for people reading the file."""
        self._answers[key] = answer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, **context, **asdict(answer)}, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            if self._needs_newline:  # a torn line stays on its own and is skipped, not glued to this one
                handle.write("\n")
                self._needs_newline = False
            handle.write(line)

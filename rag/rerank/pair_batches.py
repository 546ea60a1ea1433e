"""(query, passage) pairs tokenized once and cut into batches of similar token length.

On a CPU the waste in cross-encoder inference is padding: a batch costs what its longest pair
costs, times its size. Sorting by token count (not characters: one Korean character is about two
tokens, one English character a quarter) and padding each batch only to its own longest pair
removes most of it. Every backend (torch, ONNX Runtime) scores through this one path, so the
order of scores never depends on the batching.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def length_batches(
    tokenizer, pairs: list[tuple[str, str]], max_length: int, batch_size: int, names: tuple[str, ...] = INPUTS
) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
    """Yield (row numbers into `pairs`, int64 arrays by input name) per batch, shortest pairs first."""
    queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
    features = tokenizer(queries, passages, truncation="longest_first", max_length=max_length)
    ids = features["input_ids"]
    order = sorted(range(len(pairs)), key=lambda i: len(ids[i]))
    size = max(1, batch_size)
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        width = max(len(ids[i]) for i in rows)
        batch = {}
        for name in names:
            if name not in features:
                continue
            fill = (tokenizer.pad_token_id or 0) if name == "input_ids" else 0  # only ids pad with non-zero
            array = np.full((len(rows), width), fill, dtype=np.int64)
            for r, i in enumerate(rows):
                array[r, : len(ids[i])] = features[name][i]
            batch[name] = array
        yield rows, batch

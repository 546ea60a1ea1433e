"""Fine-tune a cross-encoder with a listwise loss over (1 positive + hard negatives) groups.

Each step takes `batch_queries` queries, pairs each with one positive and `group - 1` of its mined
negatives, and applies softmax cross-entropy over the group (the positive is the target). Every
`eval_every` steps the held-out validation queries are reranked (positives among their mined
negatives, 20 candidates) and MRR@10 is measured; the best model is kept, training stops after
`patience` evaluations without improvement, and a checkpoint (model, optimizer, scheduler, RNG,
step) lets an interrupted run resume. Seeds are fixed.

The original word embeddings stay frozen (only added Hangul syllables train), which keeps what
differs from the base small enough to ship (see rag.rerank.bundled). The added rows start from an
approximation, not from pretraining, so they learn `embedding_lr_scale` times faster than the
pretrained layers (which a high rate would wreck).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ingest.writer import Progress
from rag.errors import RagError
from rag.hangul import HANGUL
from rag.quiet import quiet_libraries
from rag.training.data import Example, lengthen


@dataclass
class TrainConfig:
    base: str
    out_dir: Path
    max_steps: int = 1500
    batch_queries: int = 2
    group: int = 8
    lr: float = 5e-5
    warmup: float = 0.1
    max_length: int = 256
    eval_every: int = 100
    patience: int = 4
    seed: int = 13
    syllables: int = 3000
    embedding_lr_scale: float = 20.0
    val_candidates: int = 20
    layers: int | None = None
    lengthen: float = 0.0


def _set_seeds(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig, train: list[Example]):
    """The base as a 1-logit cross-encoder, with Hangul syllables added if its vocabulary lacks them.

    The base may be a reranker name too (the bundled rag-e5-ko-en, a preset): fine-tuning the
    bundled model on your own pairs starts from its Korean. A base that already reads Hangul
    (multilingual-e5-small's XLM-R pieces) gets no syllables: `cfg.syllables` is set to 0, so the
    saved config says what was done.
    """
    from sentence_transformers import CrossEncoder

    quiet_libraries()

    from rag.models.embedder import resolve_model_path
    from rag.rerank.reranker import resolve_reranker
    from rag.training.vocab import add_syllables, common_syllables, frequent_syllables, reads_hangul

    path = resolve_model_path(resolve_reranker(cfg.base))
    model = CrossEncoder(path, num_labels=1, max_length=cfg.max_length, device="cpu")
    base_vocab = len(model.tokenizer)
    if reads_hangul(model.tokenizer):
        cfg.syllables = 0
    if cfg.syllables:
        texts = (t for e in train for t in [e.query, *e.positives])
        wanted = list(dict.fromkeys(frequent_syllables(texts, cfg.syllables) + common_syllables()))
        add_syllables(model.model, model.tokenizer, wanted)
    if cfg.layers:
        keep_layers(model.model, cfg.layers)
    return model, base_vocab


def keep_layers(model, layers: int) -> None:
    """Keep the first `layers` transformer layers of the encoder (a faster, smaller cross-encoder).

    Cost per pair is linear in the layer count, and the lower layers of a pretrained encoder carry
    most of what a reranker needs (MS MARCO's MiniLM cross-encoders lose almost nothing from 12 to
    6 layers), so dropping the top layers before fine-tuning buys speed cheaply.
    """
    encoder = model.base_model.encoder
    if not 0 < layers <= len(encoder.layer):
        raise RagError(f"--layers {layers}: the base has {len(encoder.layer)} layers; keep 1 to {len(encoder.layer)}")
    encoder.layer = encoder.layer[:layers]
    model.config.num_hidden_layers = layers


def _embedding_groups(model, base_vocab: int, cfg: TrainConfig) -> list[dict]:
    """Optimizer groups for the token embeddings: only rows added to the vocabulary are trained.

    With no rows added (a base that reads Hangul already) the matrix is frozen outright: a masked
    gradient would still be a dense vocabulary-sized tensor each step (250k x 384 for
    multilingual-e5-small), and AdamW would sweep it, for updates of exactly zero: it made the
    bundled model's training steps 5.4 s instead of 4.1 s here (16 pairs, 8 layers, 2 cores).
    """
    import torch

    weight = model.model.get_input_embeddings().weight
    if len(model.tokenizer) <= base_vocab:  # (not len(weight): XLM-R's matrix has 35 rows past its vocabulary)
        weight.requires_grad_(False)
        return []
    mask = torch.zeros_like(weight)
    mask[base_vocab:] = 1.0
    weight.register_hook(lambda grad: grad * mask)
    return [{"params": [weight], "weight_decay": 0.0, "lr": cfg.lr * cfg.embedding_lr_scale}]


def _scores(model, pairs: list[tuple[str, str]], max_length: int):
    features = model.tokenizer(
        [q for q, _ in pairs], [p for _, p in pairs], padding=True, truncation="longest_first",
        max_length=max_length, return_tensors="pt",
    )  # fmt: skip
    return model.model(**features).logits.view(-1)


def validation_mrr(model, examples: list[Example], cfg: TrainConfig) -> dict[str, float]:
    """MRR@10 of reranking each validation query's positives among its mined negatives.

    Also split by script (queries with Hangul vs the rest): a mixed Korean + English set can
    improve overall while one language stalls, which is what the split shows.
    """
    import torch

    model.model.eval()
    reciprocal: dict[str, list[float]] = {"all": [], "hangul": [], "other": []}
    with torch.no_grad():
        for example in examples:
            candidates = [*example.positives[:1], *example.negatives[: cfg.val_candidates - 1]]
            scores = []
            order = sorted(range(len(candidates)), key=lambda i: len(candidates[i]))
            for start in range(0, len(order), 16):
                chunk = order[start : start + 16]
                logits = _scores(model, [(example.query, candidates[i]) for i in chunk], cfg.max_length)
                scores += list(zip(chunk, logits.tolist(), strict=True))
            ranked = [i for i, _ in sorted(scores, key=lambda item: -item[1])]
            rank = ranked.index(0) + 1
            value = 1.0 / rank if rank <= 10 else 0.0
            reciprocal["all"].append(value)
            reciprocal["hangul" if HANGUL.search(example.query) else "other"].append(value)
    model.model.train()
    return {key: sum(values) / len(values) for key, values in reciprocal.items() if values}


def validate(model, val_sets: dict[str, list[Example]], cfg: TrainConfig) -> dict:
    """One history entry: MRR@10 per validation set and, as `val_mrr@10`, their mean (what is kept on)."""
    results = {name: validation_mrr(model, examples, cfg) for name, examples in val_sets.items()}
    return {"val_mrr@10": sum(r["all"] for r in results.values()) / len(results), "by_set": results}


def train(train_set: list[Example], val_set: list[Example], cfg: TrainConfig, progress: Progress | None = None) -> dict:
    """Train on `train_set`, keep the weights best on `val_set`.

    With `cfg.lengthen`, that share of the training queries have their passages padded
    (rag.training.data.lengthen), and validation runs twice: on the passages as given and on
    all of them padded, keeping the weights best on the mean, so early stopping sees the skill
    the padding trains (reading a long passage) as well as the one it may cost.
    """
    import torch

    progress = progress or (lambda stage, done, total: None)
    train_set = lengthen(train_set, cfg.lengthen, cfg.seed)
    val_sets = {"given": val_set}
    if cfg.lengthen:
        val_sets["padded"] = lengthen(val_set, 1.0, cfg.seed + 1)
    usable = [e for e in train_set if e.positives and e.negatives]
    if not usable:
        raise RagError("no training example has both a positive and a negative")
    _set_seeds(cfg.seed)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = cfg.out_dir / "checkpoint"
    model, base_vocab = build_model(cfg, usable)
    embeddings = model.model.get_input_embeddings().weight
    others = [p for p in model.model.parameters() if p is not embeddings]
    optimizer = torch.optim.AdamW(
        [{"params": others, "weight_decay": 0.01, "lr": cfg.lr}, *_embedding_groups(model, base_vocab, cfg)]
    )
    warmup = max(1, int(cfg.max_steps * cfg.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (cfg.max_steps - s) / (cfg.max_steps - warmup)))
    )
    state = {"step": 0, "best_mrr": -1.0, "best_step": 0, "bad_evals": 0, "history": []}
    if (checkpoint / "state.json").is_file():  # resume
        state = json.loads((checkpoint / "state.json").read_text())
        model.model.load_state_dict(torch.load(checkpoint / "model.pt", weights_only=True))
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng = random.Random(cfg.seed + state["step"])
    if state["step"] == 0:
        state["history"].append({"step": 0, **validate(model, val_sets, cfg)})
        state["best_mrr"] = state["history"][0]["val_mrr@10"]
    model.model.train()
    started = time.perf_counter()
    while state["step"] < cfg.max_steps and state["bad_evals"] < cfg.patience:
        batch = rng.sample(usable, min(cfg.batch_queries, len(usable)))
        pairs = []
        for example in batch:
            negatives = rng.sample(example.negatives, min(cfg.group - 1, len(example.negatives)))
            negatives += rng.choices(example.negatives, k=cfg.group - 1 - len(negatives))
            pairs += [(example.query, rng.choice(example.positives))] + [(example.query, n) for n in negatives]
        logits = _scores(model, pairs, cfg.max_length).view(len(batch), cfg.group)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        state["step"] += 1
        progress("training", state["step"], cfg.max_steps)
        if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.max_steps:
            entry = {"step": state["step"], **validate(model, val_sets, cfg), "loss": float(loss.detach())}
            state["history"].append(entry)
            if entry["val_mrr@10"] > state["best_mrr"]:
                state.update(best_mrr=entry["val_mrr@10"], best_step=state["step"], bad_evals=0)
                model.save(str(cfg.out_dir / "model"))
            else:
                state["bad_evals"] += 1
            _save_checkpoint(checkpoint, model, optimizer, scheduler, state)
    state["kept_step"] = state["best_step"]
    if not (cfg.out_dir / "model").is_dir():  # no validation beat the starting weights: keep the last ones
        model.save(str(cfg.out_dir / "model"))
        state["kept_step"] = state["step"]
    state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - started
    state["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    (cfg.out_dir / "training.json").write_text(json.dumps(state, indent=2))
    return state


def _save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.model.state_dict(), folder / "model.pt")
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    (folder / "state.json").write_text(json.dumps(state))

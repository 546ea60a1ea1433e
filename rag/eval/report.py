"""Write what `rag eval` measured: terminal tables, report.json, report.md and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from rag.eval.runner import GENERATION_DELTAS, Delta, Experiment, Run
from rag.eval.stats import CONFIDENCE, RESAMPLES, SEED
from rag.rerank.reranker import NO_RERANK, reranker_options

TABLE_METRICS = ("hit@1", "hit@5", "mrr@10", "ndcg@10", "recall@20")
LATENCY = (
    ("retrieve_p50", "retrieve p50"),
    ("retrieve_p95", "retrieve p95"),
    ("rerank_p50", "rerank p50"),
    ("rerank_p95", "rerank p95"),
    ("generate_p50", "generate p50"),
    ("generate_p95", "generate p95"),
    ("first_token_p50", "first token p50"),
)
PER_QUESTION_LIMIT = 500  # report.json lists per-question scores up to this many questions


def _rounded(values: dict[str, float], digits: int) -> dict[str, float]:
    return {k: round(v, digits) for k, v in values.items()}


def _delta_dict(d: Delta) -> dict:
    return {
        "retriever": d.retriever,
        "reranker": d.reranker,
        "candidates": d.candidates,
        "metric": d.metric,
        "questions": d.difference.n,
        "baseline": round(d.baseline, 4),
        "rerank": round(d.rerank, 4),
        "difference": round(d.difference.mean, 4),
        "ci95": [round(d.difference.low, 4), round(d.difference.high, 4)],
    }


def _run_dict(x: Experiment, r: Run) -> dict:
    out = {
        "retriever": r.retriever,
        "reranker": r.reranker,
        "candidates": r.candidates,
        "metrics": _rounded(r.metrics, 4),
        "latency_ms": _rounded(r.latency_ms, 1),
    }
    if r.generation:
        out["generation"] = _rounded(r.generation, 4)
    if len(x.dataset.questions) <= PER_QUESTION_LIMIT:
        out["per_question"] = [{"id": q.id, **_rounded(row, 4)} for q, row in zip(x.dataset.questions, r.per_question)]
    return out


def report_dict(x: Experiment) -> dict:
    s = x.settings
    settings = {
        "store": s.store,  # the evaluation index's store: local, or milvus (Lite or a server)
        "embedder": s.embedder,
        "chunk_size": s.chunk_size,
        "chunk_overlap": s.chunk_overlap,
        "top_n": s.top_n,
        "rerank": {name: reranker_options(s, name) for name in x.rerankers if name.lower() not in NO_RERANK},
        "retrievers": x.retrievers,
        "rerankers": x.rerankers,
        "candidates": x.candidates,
        "generate": x.generate,
        "ingest_seconds": round(x.ingest_seconds, 1),
    }
    if x.llm_model:
        settings["llm"] = {
            "model": x.llm_model,
            "fingerprint": x.generation_fingerprint,
            "max_tokens": s.llm_max_tokens,
            "temperature": s.llm_temperature,
            "context_tokens": s.llm_context_tokens,
        }
    return {
        "dataset": x.dataset.name,
        "format": x.dataset.format,
        "questions": len(x.dataset.questions),
        "questions_with_gold": sum(1 for q in x.dataset.questions if q.gold_ids),
        "settings": settings,
        "runs": [_run_dict(x, r) for r in x.runs],
        "bootstrap": {"resamples": RESAMPLES, "seed": SEED, "confidence": CONFIDENCE},
        "deltas": [_delta_dict(d) for d in x.deltas],
    }


def _baseline(x: Experiment, run: Run) -> Run | None:
    return next(
        (b for b in x.runs if b.reranker == "none" and (b.retriever, b.candidates) == (run.retriever, run.candidates)),
        None,
    )


def _columns(x: Experiment) -> list[str]:
    present = {k for r in x.runs for k in r.metrics}
    columns = [k for k in TABLE_METRICS if k in present]
    generated = {k for r in x.runs if r.generation for k in r.generation}
    return columns + [k for k in GENERATION_DELTAS if k in generated]


def _latency_columns(x: Experiment) -> list[tuple[str, str]]:
    present = {k for r in x.runs for k in r.latency_ms}
    return [(key, name) for key, name in LATENCY if key in present]


def _value(run: Run, key: str) -> float | None:
    return run.metrics.get(key, (run.generation or {}).get(key))


def _delta(x: Experiment, run: Run, key: str) -> float | None:
    """`run`'s value minus its no-rerank baseline's (same retriever and count); None for the baseline."""
    base, value = _baseline(x, run), _value(run, key)
    if base is None or base is run or value is None or (b := _value(base, key)) is None:
        return None
    return value - b


def _ms(run: Run, key: str) -> str:
    value = run.latency_ms.get(key)
    return "-" if value is None else f"{value:.0f}"


def _significant(d: Delta) -> bool:
    """The interval excludes zero: this draw of questions would rarely show no difference."""
    return d.difference.low > 0 or d.difference.high < 0


DELTAS_TITLE = (
    f"rerank minus no rerank (same retriever and candidates), paired over questions, "
    f"{CONFIDENCE:.0%} bootstrap interval ({RESAMPLES} resamples)"
)


def rich_tables(x: Experiment) -> list[Table]:
    """Metrics per run, latency per run, and the paired rerank differences (when there are any)."""
    columns = _columns(x)
    table = Table(title=f"{x.dataset.name}: {len(x.dataset.questions)} questions", title_justify="left")
    for name in ("retriever", "reranker", "cands"):
        table.add_column(name)
    for name in columns:
        table.add_column(name, justify="right")
    best = {k: max((v for r in x.runs if (v := _value(r, k)) is not None), default=None) for k in columns}
    for run in x.runs:
        cells = []
        for key in columns:
            value = _value(run, key)
            if value is None:
                cells.append("-")
                continue
            text = f"{value:.3f}"
            if (delta := _delta(x, run, key)) is not None:
                colour = "green" if delta > 0 else "red" if delta < 0 else "dim"
                text += f" [{colour}]({delta:+.3f})[/]"
            cells.append(f"[bold]{text}[/]" if value == best[key] else text)
        table.add_row(run.retriever, run.reranker, str(run.candidates), *cells)
    latency_columns = _latency_columns(x)
    latency = Table(title="latency per question, ms", title_justify="left")
    for name in ("retriever", "reranker", "cands"):
        latency.add_column(name)
    for _, name in latency_columns:
        latency.add_column(name, justify="right")
    for run in x.runs:
        latency.add_row(run.retriever, run.reranker, str(run.candidates), *(_ms(run, k) for k, _ in latency_columns))
    tables = [table, latency]
    if x.deltas:
        deltas = Table(title=DELTAS_TITLE, title_justify="left")
        for name in ("retriever", "reranker", "cands", "metric", "n", "without", "with", "difference", "95% CI"):
            deltas.add_column(name, justify="right" if name in {"n", "without", "with", "difference"} else "left")
        for d in x.deltas:
            i = d.difference
            colour = ("green" if i.mean > 0 else "red") if _significant(d) else "dim"
            deltas.add_row(
                d.retriever, d.reranker, str(d.candidates), d.metric, str(i.n), f"{d.baseline:.3f}",
                f"{d.rerank:.3f}", f"[{colour}]{i.mean:+.3f}[/]", f"[{i.low:+.3f}, {i.high:+.3f}]",
            )  # fmt: skip
        tables.append(deltas)
    return tables


def markdown(x: Experiment) -> str:
    columns = _columns(x)
    head = ["retriever", "reranker", "candidates", *columns]
    lines = [
        f"# rag eval: {x.dataset.name}",
        "",
        f"{len(x.dataset.questions)} questions ({sum(1 for q in x.dataset.questions if q.gold_ids)} with a gold "
        f"document), store {x.settings.store}, embedder `{x.settings.embedder}`, chunk size {x.settings.chunk_size}. "
        "Retrieval metrics rank distinct documents; deltas are against the no-rerank baseline "
        "with the same retriever and candidate count.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for run in x.runs:
        cells = []
        for key in columns:
            value = _value(run, key)
            delta = _delta(x, run, key)
            cells.append(("-" if value is None else f"{value:.3f}") + ("" if delta is None else f" ({delta:+.3f})"))
        lines.append(f"| {run.retriever} | {run.reranker} | {run.candidates} | " + " | ".join(cells) + " |")
    latency_columns = _latency_columns(x)
    head = ["retriever", "reranker", "candidates", *(f"{name} ms" for _, name in latency_columns)]
    lines += ["", "## Latency per question", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in x.runs:
        cells = [run.retriever, run.reranker, str(run.candidates), *(_ms(run, k) for k, _ in latency_columns)]
        lines.append("| " + " | ".join(cells) + " |")
    if x.deltas:
        head = ["retriever", "reranker", "candidates", "metric", "questions", "without", "with", "difference", "95% CI"]
        lines += [
            "",
            "## Does rerank help?",
            "",
            f"{DELTAS_TITLE}; bold: the interval excludes 0.",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for d in x.deltas:
            i = d.difference
            difference = f"**{i.mean:+.3f}**" if _significant(d) else f"{i.mean:+.3f}"
            cells = [d.retriever, d.reranker, str(d.candidates), d.metric, str(i.n), f"{d.baseline:.3f}"]
            cells += [f"{d.rerank:.3f}", difference, f"[{i.low:+.3f}, {i.high:+.3f}]"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _metric_at(run: Run, name: str, k: int) -> float | None:
    """`name@k`, or at the largest cutoff within the candidates (identical: no document lies beyond)."""
    cutoffs = sorted(int(key.split("@")[1]) for key in run.metrics if key.startswith(name + "@"))
    usable = [c for c in cutoffs if c <= k]
    return run.metrics.get(f"{name}@{usable[-1]}") if usable else None


def plot(x: Experiment, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    arms = list(dict.fromkeys((r.retriever, r.reranker) for r in x.runs))
    for (metric, k), axis in zip((("mrr", 10), ("hit", 1)), axes):
        for retriever, reranker in arms:
            runs = [r for r in x.runs if (r.retriever, r.reranker) == (retriever, reranker)]
            points = [(r.candidates, v) for r in runs if (v := _metric_at(r, metric, k)) is not None]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, marker="o", label=f"{retriever} + {reranker}")
        axis.set_xscale("log")
        axis.set_xticks(x.candidates, [str(c) for c in x.candidates])
        axis.minorticks_off()
        axis.set_xlabel("candidates reranked")
        axis.set_title(f"{metric}@{k}")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle(f"rag eval: {x.dataset.name} ({len(x.dataset.questions)} questions)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_reports(x: Experiment, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "plot.png"]
    paths[0].write_text(json.dumps(report_dict(x), indent=2, ensure_ascii=False), encoding="utf-8")
    paths[1].write_text(markdown(x), encoding="utf-8")
    plot(x, paths[2])
    return paths

"""Write what `rag eval` measured: a terminal table, report.json, report.md and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from rag.eval.runner import Experiment, Run
from rag.reranker import NO_RERANK, reranker_options

TABLE_METRICS = ("hit@1", "hit@5", "mrr@10", "ndcg@10", "recall@20")
GENERATION_METRICS = ("exact_match", "f1", "rouge_l", "unanswerable_declined", "judge_correct")


def report_dict(x: Experiment) -> dict:
    s = x.settings
    return {
        "dataset": x.dataset.name,
        "format": x.dataset.format,
        "questions": len(x.dataset.questions),
        "questions_with_gold": sum(1 for q in x.dataset.questions if q.gold_ids),
        "settings": {
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
        },
        "runs": [
            {
                "retriever": r.retriever,
                "reranker": r.reranker,
                "candidates": r.candidates,
                "metrics": {k: round(v, 4) for k, v in r.metrics.items()},
                "latency_ms": {k: round(v, 1) for k, v in r.latency_ms.items()},
                **({"generation": {k: round(v, 4) for k, v in r.generation.items()}} if r.generation else {}),
            }
            for r in x.runs
        ],
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
    return columns + [k for k in GENERATION_METRICS if k in generated]


def _value(run: Run, key: str) -> float | None:
    return run.metrics.get(key, (run.generation or {}).get(key))


def _delta(x: Experiment, run: Run, key: str) -> float | None:
    """`run`'s value minus its no-rerank baseline's (same retriever and count); None for the baseline."""
    base, value = _baseline(x, run), _value(run, key)
    if base is None or base is run or value is None or (b := _value(base, key)) is None:
        return None
    return value - b


def rich_table(x: Experiment) -> Table:
    columns = _columns(x)
    table = Table(title=f"{x.dataset.name}: {len(x.dataset.questions)} questions", title_justify="left")
    for name in ("retriever", "reranker", "cands"):
        table.add_column(name)
    for name in columns:
        table.add_column(name, justify="right")
    table.add_column("rerank p50 ms", justify="right")
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
        table.add_row(run.retriever, run.reranker, str(run.candidates), *cells, f"{run.latency_ms['rerank_p50']:.0f}")
    return table


def markdown(x: Experiment) -> str:
    columns = _columns(x)
    head = ["retriever", "reranker", "candidates", *columns, "retrieve p50 ms", "rerank p50 ms", "rerank p95 ms"]
    lines = [
        f"# rag eval: {x.dataset.name}",
        "",
        f"{len(x.dataset.questions)} questions ({sum(1 for q in x.dataset.questions if q.gold_ids)} with a gold "
        f"document), embedder `{x.settings.embedder}`, chunk size {x.settings.chunk_size}. "
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
        lat = run.latency_ms
        lines.append(
            f"| {run.retriever} | {run.reranker} | {run.candidates} | "
            + " | ".join(cells)
            + f" | {lat['retrieve_p50']:.0f} | {lat['rerank_p50']:.0f} | {lat['rerank_p95']:.0f} |"
        )
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

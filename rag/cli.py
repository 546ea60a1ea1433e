"""The `rag` command: composes ingest and the query pipeline; holds no logic of its own."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rag.errors import RagError
from rag.quiet import quiet_libraries
from rag.settings import Settings

if TYPE_CHECKING:
    from ingest.writer import Progress as ProgressFn
    from rag.training.data import Example

app = typer.Typer(help="Answer questions over your own documents, with sources.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

IndexOpt = Annotated[Path | None, typer.Option("--index", help="Index folder [env RAG_INDEX_DIR]")]
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="local (FAISS + SQLite) or milvus (RAG_MILVUS_URI) [env RAG_STORE]")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show what a follow-up was retrieved for")]
RetrieverOpt = Annotated[str | None, typer.Option("--retriever", help="hybrid, dense or bm25 [env RAG_RETRIEVER]")]


def _settings(**overrides: Any) -> Settings:
    """Environment and .env first, CLI flags on top (only the flags actually given)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _friendly(command):
    """Expected failures print one line and exit 1; no traceback for the user to decode."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        quiet_libraries()
        try:
            return command(*args, **kwargs)
        except RagError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)  # [..] is text
            raise typer.Exit(1) from None
        except ValidationError as exc:  # a setting from the environment, .env or a flag
            err.print(f"[bold red]error:[/] {escape(_setting_error(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _setting_error(exc: ValidationError) -> str:
    """One line per bad setting, named as the user sets it (RAG_TOP_N), with what it should be."""
    lines = []
    for problem in exc.errors():
        name = "RAG_" + "_".join(str(part) for part in problem["loc"]).upper()
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(message if message.startswith(name) else f"{name} {problem.get('input')!r}: {message}")
    return "; ".join(lines)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _display_path(path: str) -> str:
    """Relative to the working folder when inside it, else absolute; control characters escaped
    (a file name may hold a newline), so each path stays on its one line."""
    cwd = os.getcwd() + os.sep
    path = path[len(cwd) :] if path.startswith(cwd) else path
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode(), path)


def _progress_bars():
    """A rich progress display and the `progress(stage, done, total)` callback that feeds it.

    Time remaining is estimated from recent progress only, so an eval stage that starts with its
    cached answers already done still shows an honest estimate for the rest.
    """
    columns = (
        TextColumn("{task.description:>22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    bars = Progress(*columns, console=err, transient=True)
    tasks: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    return bars, progress


@app.command()
@_friendly
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest")],
    index: IndexOpt = None,
    embedder: Annotated[str | None, typer.Option(help="sentence-transformers id or path [env RAG_EMBEDDER]")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Max characters per chunk")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Characters shared by neighbouring chunks")] = None,
    store: StoreOpt = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Read, chunk, embed and tokenize on a local Ray, on this machine's cores")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Do it on the Ray cluster at this address instead (auto, ray://HEAD:10001); implies --ray"),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Then follow the folders: ingest what is created, changed, renamed or deleted (Ctrl-C ends)"
        ),
    ] = False,
) -> None:
    """Add folders or files to the index; re-running only processes what changed."""
    from ingest.writer import IndexWriter

    settings = _settings(
        index_dir=index, embedder=embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap, store=store
    )
    if watch and not any(p.is_dir() for p in paths):
        raise RagError("--watch follows folders: name at least one folder to ingest")
    bars, progress = _progress_bars()
    if not (ray or ray_address):
        with bars:
            report = IndexWriter(settings, progress).ingest(paths)
    else:
        from ingest.ray_pipeline import LOCAL, ray_compute

        with ray_compute(ray_address or LOCAL) as compute, bars:
            report = IndexWriter(settings, progress, compute=compute).ingest(paths)

    _print_ingest(report)
    if watch:
        _watch(IndexWriter(settings), paths)


def _print_ingest(report) -> None:
    out.print(f"[bold]Index[/] {report.index}")
    rate = report.chunks_added / report.seconds if report.seconds else 0.0
    out.print(
        f"files seen {report.files_seen}, ingested {len(report.ingested)}, unchanged {report.unchanged}, "
        f"skipped {len(report.skipped)}, removed {len(report.removed)}"
    )
    out.print(
        f"chunks added {report.chunks_added}, removed {report.chunks_removed}, total {report.chunks_total} "
        f"in {report.seconds:.1f} s ({rate:.1f} chunks/s)"
    )
    for path, reason in report.skipped:
        out.print(f"  [yellow]skipped[/] {_display_path(path)}: {reason}", highlight=False)
    for path in report.removed:
        out.print(f"  [cyan]removed[/] {_display_path(path)}", highlight=False)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)


def _watch(writer, paths: list[Path]) -> None:
    """Follow `paths` (ingest.watch) until Ctrl-C or SIGTERM, one line per round of changes."""
    import signal
    import threading

    from ingest.watch import follow

    stop = threading.Event()

    def request_stop(signum, _frame) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C does not wait for the round in progress
        stop.set()
        err.print("stopping after the current round (Ctrl-C again to abort it)", highlight=False)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    folders = [p for p in paths if p.is_dir()]
    err.print(f"watching {len(folders)} folder(s) for changes; Ctrl-C to stop", highlight=False)

    def on_round(report) -> None:
        stamp = time.strftime("%H:%M:%S")
        out.print(
            f"{stamp} ingested {len(report.ingested)}, unchanged {report.unchanged}, skipped {len(report.skipped)}, "
            f"removed {len(report.removed)}; {report.chunks_total} chunks in the index ({report.seconds:.1f} s)",
            highlight=False,
        )
        for path in report.ingested[:20]:
            out.print(f"  [green]ingested[/] {_display_path(path)}", highlight=False)
        for path, reason in report.skipped:
            out.print(f"  [yellow]skipped[/] {_display_path(path)}: {reason}", highlight=False)
        for path in report.removed[:20]:
            out.print(f"  [cyan]removed[/] {_display_path(path)}", highlight=False)

    def on_error(message: str) -> None:
        err.print(f"[red]error:[/] {message}", highlight=False)

    left = follow(writer, folders, on_round, on_error, stop)
    note = f"; {len(left)} change(s) not yet settled: the next rag ingest picks them up" if left else ""
    err.print(f"stopped, index committed{note}", highlight=False)


def _where(chunk) -> str:
    """The page, and whether its text came from OCR (a scan: a reader should check the page itself;
    only PDF pages are OCR'd, so an OCR'd chunk always has a page)."""
    if not chunk.page:
        return ""
    return f"  (page {chunk.page}{', OCR of a scan' if chunk.ocr else ''})"


def _print_hit(rank: int, hit) -> None:
    """[rank] path (page), then its scores; the final score only when a reranker made it."""
    label = escape(f"[{rank}]")
    out.print(f"[bold]{label}[/] [cyan]{escape(_display_path(hit.source))}[/]{_where(hit.chunk)}", highlight=False)
    scores = {
        "retrieval": hit.retrieval_score,
        "rerank": hit.rerank_score,
        "sigmoid": hit.rerank_prob,
        "relative": hit.rerank_relative,
        "final": hit.final_score if hit.rerank_score is not None else None,
    }
    shown = " · ".join(f"{name} {value:.3f}" for name, value in scores.items() if value is not None)
    out.print(f"    [dim]{shown}[/]", highlight=False)


# What the CLI says around an answer, in the question's language (rag.generation.prompt.language)
_SAID = {
    "en": {
        "sources": "Sources (most relevant first)",
        "nearest": "Nearest sources (they do not answer it)",
        "not_in": "⚠ not in {cited}: {missing}",
        "any": "any source",
    },
    "ko": {
        "sources": "출처 (관련 있는 순서)",
        "nearest": "가장 가까운 출처 (답은 들어 있지 않습니다)",
        "not_in": "⚠ {cited}에 없는 내용: {missing}",
        "any": "출처",
    },
}


def _said(answer) -> dict[str, str]:
    from rag.generation.prompt import language

    return _SAID[language(answer.question)]


def _print_sources(answer) -> None:
    """One source per entry, path on its own line: a table folds paths mid-name on an 80-column
    terminal (seven score columns leave the path 13 characters), and a folded path cannot be copied."""
    said = _said(answer)
    out.print(said["nearest"] if answer.abstained else said["sources"], style="bold", highlight=False)
    for rank, hit in enumerate(answer.sources, 1):
        _print_hit(rank, hit)
        if rank in answer.flagged:
            out.print(
                "    [yellow]⚠ this passage contains text addressed to an AI assistant: it was treated as data "
                "and those sentences were withheld from the model[/]",
                highlight=False,
            )


def _answer_one(pipeline, question: str, as_json: bool, history: list | None = None, verbose: bool = False):
    """Ask one question (a follow-up of `history`) and print it; returns the answer."""
    if as_json:
        answer = pipeline.ask(question, history=history)
        out.print_json(json.dumps(answer.as_dict(), ensure_ascii=False))
        return answer

    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    answer = pipeline.ask(question, on_token=write, history=history)
    sys.stdout.write("\n\n")
    if verbose and len(answer.retrieval_queries) > 1:
        shown = " + ".join(f"“{query}”" for query in answer.retrieval_queries)
        err.print(f"[dim]follow-up: retrieved for {escape(shown)}[/]", highlight=False)
    for warning in answer.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if answer.error:
        err.print(f"[bold red]error:[/] {answer.error}", highlight=False)
    said = _said(answer)
    for check in answer.checks:
        if not check.supported:
            cited = "".join(f"[{n}]" for n in check.cited) or said["any"]
            flag = said["not_in"].format(cited=cited, missing=", ".join(check.missing))
            out.print(f"[yellow]{escape(flag)}[/] — {escape(check.sentence)}", highlight=False)
    _print_sources(answer)
    t = answer.timings_ms
    out.print(
        f"[dim]retrieve {t.get('retrieve', 0):.0f} ms · rerank {t.get('rerank', 0):.0f} ms · "
        f"first word {t.get('first_token', 0):.0f} ms · generate {t.get('generate', 0):.0f} ms · "
        f"llm {answer.models.get('llm')}[/]"
    )
    return answer


def _loading(line: str) -> None:
    """What a cold start is waiting for, on stderr (stdout stays the answer, or the JSON)."""
    err.print(f"[dim]{escape(line)}[/]", highlight=False)


def _chat(pipeline, verbose: bool = False) -> None:
    """Questions until an empty line; each after the first is a follow-up of the ones before."""
    from rag.generation.followup import Turn

    err.print("[dim]Ask a question (empty line or Ctrl-D to quit).[/]")
    history: list[Turn] = []
    while True:
        try:
            question = out.input("[bold green]?[/] ").strip()
        except EOFError:
            break
        if not question or question.lower() in {"exit", "quit"}:
            break
        try:
            answer = _answer_one(pipeline, question, as_json=False, history=history, verbose=verbose)
        except RagError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            continue
        history.append(Turn(question, answer.answer))


@app.command()
@_friendly
def ask(
    question: Annotated[str | None, typer.Argument(help="The question; omit it for an interactive chat")] = None,
    index: IndexOpt = None,
    candidates: Annotated[int | None, typer.Option("--candidates", "-k", help="Passages retrieved for rerank")] = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", help="Passages given to the LLM")] = None,
    reranker: Annotated[str | None, typer.Option(help="Preset, hub id, local path, or none")] = None,
    retriever: RetrieverOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    store: StoreOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Retrieve, rerank and answer one question with numbered sources."""
    from rag.pipeline import Pipeline

    settings = _settings(
        index_dir=index, candidates=candidates, top_n=top_n, reranker=reranker, retriever=retriever, store=store
    )
    pipeline = Pipeline(settings, log=_loading)
    if question is None:
        pipeline.warm_llm()
        _chat(pipeline, verbose)
        return
    pipeline.prefetch_llm()  # the LLM loads while the question is retrieved
    if _answer_one(pipeline, question, as_json).error is not None:
        raise typer.Exit(1)


@app.command()
@_friendly
def search(
    query: Annotated[str, typer.Argument(help="What to look for (a question or keywords)")],
    index: IndexOpt = None,
    candidates: Annotated[int | None, typer.Option("--candidates", "-k", help="Passages retrieved for rerank")] = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", help="Passages shown")] = None,
    reranker: Annotated[str | None, typer.Option(help="Preset, hub id, local path, or none")] = None,
    retriever: RetrieverOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    store: StoreOpt = None,
) -> None:
    """The passages that answer a query, best first, with no LLM: retrieve, then rerank."""
    from rag.pipeline import Pipeline

    settings = _settings(
        index_dir=index, candidates=candidates, top_n=top_n, reranker=reranker, retriever=retriever, store=store
    )
    found = Pipeline(settings, log=_loading if not as_json else None).search(query)
    if as_json:
        out.print_json(json.dumps(found.as_dict(), ensure_ascii=False))
        return
    for warning in found.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for rank, hit in enumerate(found.hits, 1):
        _print_hit(rank, hit)
        out.print(f"    {escape(_snippet(hit.chunk.text))}", highlight=False)
    t = found.timings_ms
    out.print(f"[dim]retrieve {t.get('retrieve', 0):.0f} ms · rerank {t.get('rerank', 0):.0f} ms[/]")


def _snippet(text: str, width: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


@app.command()
@_friendly
def chat(
    index: IndexOpt = None,
    candidates: Annotated[int | None, typer.Option("--candidates", "-k")] = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n")] = None,
    reranker: Annotated[str | None, typer.Option()] = None,
    retriever: RetrieverOpt = None,
    store: StoreOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Interactive questions, with the models kept loaded between them; a follow-up is retrieved
    with the question before it too (--verbose shows the queries; rag.generation.followup)."""
    from rag.pipeline import Pipeline

    settings = _settings(
        index_dir=index, candidates=candidates, top_n=top_n, reranker=reranker, retriever=retriever, store=store
    )
    pipeline = Pipeline(settings, log=_loading)
    pipeline.warm_llm()
    _chat(pipeline, verbose)


@app.command()
@_friendly
def serve(
    index: IndexOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind; not loopback needs RAG_SERVE_API_KEY")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    allow_root: Annotated[
        list[Path] | None, typer.Option("--allow-root", help="Folder whose files clients may add by path (repeat)")
    ] = None,
    reports: Annotated[Path | None, typer.Option(help="Folder of `rag eval --out` reports for the page")] = None,
    store: StoreOpt = None,
) -> None:
    """Serve the index over HTTP: OpenAI-compatible chat with sources, and search (see /docs)."""
    import uvicorn

    from rag.serve.api import create_app

    api_key = os.environ.get("RAG_SERVE_API_KEY") or None
    if not _loopback(host) and not api_key:
        raise RagError(f"--host {host} is reachable from other machines: set RAG_SERVE_API_KEY (clients then send "
                       "Authorization: Bearer <key>) or keep the default 127.0.0.1")  # fmt: skip
    settings = _settings(index_dir=index, store=store)
    err.print(f"[dim]loading models for the {settings.store} index …[/]", highlight=False)
    application = create_app(
        settings, api_key=api_key, allowed_roots=tuple(allow_root or ()), reports=reports, log=_loading
    )
    err.print(f"ready: http://{host}:{port}/  (API docs at /docs)", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning")


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@app.command("eval")
@_friendly
def eval_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset file or folder")],
    fmt: Annotated[
        str, typer.Option("--format", help="auto|jsonl|squad|autorag|clapnq|hotpotqa|msmarco|sec10q")
    ] = "auto",
    limit: Annotated[int | None, typer.Option(help="Evaluate the first N questions")] = None,
    retriever: Annotated[list[str] | None, typer.Option(help="Retriever arm(s), repeat or comma list")] = None,
    reranker: Annotated[list[str] | None, typer.Option(help="Reranker arm(s); 'none' is always included")] = None,
    candidates: Annotated[str, typer.Option(help="Candidate counts to rerank, e.g. 5,10,20,50")] = "5,10,20",
    split: Annotated[str, typer.Option(help="msmarco only: all|eval|train")] = "all",
    generate: Annotated[
        bool, typer.Option("--generate", help="Also generate and score answers (cached: a rerun resumes)")
    ] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Report folder [default: rag-eval/DATASET]")] = None,
    answers: Annotated[
        Path | None, typer.Option(help="Folder of cached answers [default: RAG_EVAL_ANSWERS_DIR or the eval cache]")
    ] = None,
    embedder: Annotated[str | None, typer.Option(help="sentence-transformers id or path")] = None,
    store: StoreOpt = None,
) -> None:
    """Measure retrieval (and answer) accuracy with and without rerank, across k and rerankers."""
    from rag.eval.datasets import load_eval_set
    from rag.eval.report import markdown, rich_tables, write_reports
    from rag.eval.runner import Evaluator, Experiment, parse_arms, parse_candidates
    from rag.rerank.reranker import RerankerUnavailable, reranker_from

    settings = _settings(embedder=embedder, store=store, eval_answers_dir=answers)
    counts = parse_candidates(candidates)
    data = load_eval_set(dataset, fmt, split, limit)
    if not reranker:  # the configured reranker joins when it can be loaded; explicit ones must load
        try:
            reranker_from(settings)
            reranker = [settings.reranker]
        except RerankerUnavailable as exc:
            err.print(f"[yellow]warning:[/] {exc} — evaluating without it", highlight=False)
            reranker = []
    retrievers, rerankers = parse_arms(retriever or [settings.retriever], reranker)
    experiment = Experiment(data, settings, retrievers, rerankers, counts, generate)
    err.print(
        f"{data.name} ({data.format}): {len(data.questions)} questions; arms: "
        + ", ".join(f"{r}+{k}" for r in retrievers for k in rerankers)
        + f"; candidates {counts}",
        highlight=False,
    )
    bars, progress = _progress_bars()
    with bars:
        Evaluator(experiment, progress).run()
    if out.is_terminal:
        for table in rich_tables(experiment):
            out.print(table)
    else:  # a file or a pipe: rich would fold the table into its width; Markdown keeps every column
        out.out(markdown(experiment), highlight=False, end="")
    for path in write_reports(experiment, out_dir or Path("rag-eval") / data.name):
        out.print(f"wrote {path}", highlight=False)


reranker_app = typer.Typer(help="Train and inspect cross-encoder rerankers.", no_args_is_help=True)
app.add_typer(reranker_app, name="reranker")


@reranker_app.command("train")
@_friendly
def reranker_train(
    data: Annotated[list[Path], typer.Argument(help="jsonl of {query, positives, negatives?} or MS MARCO json")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (model/ is the CrossEncoder)")],
    base: Annotated[str, typer.Option(help="Base model: hub id, path or reranker name")] = "multilingual-e5-small",
    max_steps: Annotated[int, typer.Option(help="Training steps")] = 1500,
    val_size: Annotated[int, typer.Option(help="Held-out queries for early stopping")] = 200,
    negatives: Annotated[int, typer.Option(help="Hard negatives mined per query (0: use those given)")] = 15,
    batch_queries: Annotated[int, typer.Option(help="Queries per step")] = 2,
    group: Annotated[int, typer.Option(help="Passages per query per step (1 positive + negatives)")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate")] = 5e-5,
    max_length: Annotated[int, typer.Option(help="Token limit of one pair")] = 256,
    eval_every: Annotated[int, typer.Option(help="Steps between validations")] = 100,
    patience: Annotated[int, typer.Option(help="Validations without improvement before stopping")] = 4,
    syllables: Annotated[int, typer.Option(help="Frequent Hangul syllables to add (0: none)")] = 3000,
    embedding_lr_scale: Annotated[float, typer.Option(help="Learning-rate multiplier of added syllables")] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed for sampling and the validation split")] = 13,
    lengthen: Annotated[
        float, typer.Option(help="Share of training queries whose passages are padded with other queries' text")
    ] = 0.0,
    layers: Annotated[
        int | None, typer.Option(help="Keep only the base's first N layers (faster; default: all)")
    ] = None,
) -> None:
    """Fine-tune a cross-encoder on your Q&A pairs, with hard negatives mined by our retrieval."""
    from rag.training.card import kept_mrr, write_card
    from rag.training.train import TrainConfig, train

    settings = _settings()
    cfg = TrainConfig(
        base=base, out_dir=out_dir, max_steps=max_steps, batch_queries=batch_queries, group=group, lr=lr,
        max_length=max_length, eval_every=eval_every, patience=patience, seed=seed, syllables=syllables,
        embedding_lr_scale=embedding_lr_scale, layers=layers, lengthen=lengthen,
    )  # fmt: skip
    bars, progress = _progress_bars()
    with bars:
        files, training, validation = _training_data(data, settings, val_size, seed, negatives, progress)
        state = train(training, validation, cfg, progress)
        blend = _calibrate(out_dir / "model", files, validation, settings, progress)
    model_dir = out_dir / "model"
    info = {
        "syllables": cfg.syllables,
        "data": [str(p) for p in data],
        "train": len(training),
        "val": len(validation),
        "negatives": negatives,
        "lengthen": lengthen,
        "command": "rag reranker train " + " ".join(sys.argv[3:]),
        "blend": blend,
    }
    write_card(model_dir, state, info)
    out.print(
        f"validation MRR@10 {state['history'][0]['val_mrr@10']:.3f} -> {kept_mrr(state):.3f} "
        f"(step {state['kept_step']} of {state['step']}); model in {model_dir}",
        highlight=False,
    )


def _training_data(
    data: list[Path], settings: Settings, val_size: int, seed: int, negatives: int, progress: ProgressFn
) -> tuple[list[list[Example]], list[Example], list[Example]]:
    """Examples per file (negatives mined within each file's passages) and the seeded split."""
    from rag.training.data import mine_negatives, read_examples, split_validation

    files = [read_examples(path) for path in data]
    examples = [e for f in files for e in f]
    if len(examples) <= val_size:
        raise RagError(f"{len(examples)} training queries: need more than --val-size {val_size}")
    for examples_of_file in files:
        mine_negatives(examples_of_file, settings, per_query=negatives, progress=progress)
    training, validation = split_validation(examples, val_size, seed)
    return files, training, validation


def _calibrate(
    model_dir: Path, files: list[list[Example]], validation: list[Example], settings: Settings, progress: ProgressFn
) -> dict:
    from rag.training.calibrate import calibrate

    fitted = calibrate(model_dir, files, validation, settings, progress)
    out.print(
        f"blend: logit weight {fitted['logit_weight']} on {settings.retriever} top {settings.candidates}: "
        f"validation MRR@10 {fitted['val_mrr@10_first_stage_only']:.3f} without rerank, "
        f"{fitted['val_mrr@10_rerank_only']:.3f} rerank only, {fitted['val_mrr@10']:.3f} blended",
        highlight=False,
    )
    return fitted


@reranker_app.command("calibrate")
@_friendly
def reranker_calibrate(
    model: Annotated[Path, typer.Argument(help="A cross-encoder folder (writes rag_reranker.json into it)")],
    data: Annotated[list[Path], typer.Argument(help="The Q&A files it was trained on, in the same order")],
    val_size: Annotated[int, typer.Option(help="Held-out queries (as given to train)")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the validation split (as given to train)")] = 13,
    retriever: Annotated[str | None, typer.Option(help="First stage to blend with")] = None,
    candidates: Annotated[int | None, typer.Option(help="Candidates reranked per query")] = None,
) -> None:
    """Fit how much of the first-stage score the reranked order keeps, on held-out queries."""
    settings = _settings(retriever=retriever, candidates=candidates)
    bars, progress = _progress_bars()
    with bars:
        files, _, validation = _training_data(data, settings, val_size, seed, 0, progress)
        _calibrate(model, files, validation, settings, progress)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""Does the model know when its passages do not answer? Its own probabilities, read before it writes.

For each question the passages and messages are built exactly as `rag ask` builds them (hybrid
top 20, no rerank, top 4, the default sentence context), and the local llama.cpp server is asked,
without generating an answer:

- `decline`: the probability that the answer starts with the prompt's decline sentence, English or
  Korean: the product of its first three tokens' probabilities, each read with the tokens before it
  forced (the prompt is evaluated once; the rest reuses the server's prompt cache).
- `greedy_declines`: whether greedy decoding would start that way (each forced token the argmax).
- `probe_no`: after the same messages, a second user turn asks "do the documents state the
  answer? yes or no"; P(no) / (P(yes) + P(no)) of the first token.
- `rerank`: the bundled reranker's best probability over the hybrid top 20 (the retrieval signal
  bench/abstain_fit.py measured), for combinations.

Rows go to --out (kept in the repository) as they are measured; a rerun resumes. ClapNQ dev alternates answerable and
unanswerable questions; its first 100 are the experiment's (reported on), so a cut is fitted on a
later slice (`--start 100 --stop 200`) and reported on `--start 0 --stop 100`.

    RAG_LLM_ENGINE=llamacpp python bench/abstain_logprob.py --set clapnq --start 100 --stop 200
    python bench/abstain_logprob.py --report   # cuts fitted on the fit rows, rates on the others
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "datasets"
SETS = {"clapnq": SHARED / "clapnq_dev", "docs_corpus": ROOT / "docs_corpus" / "questions.jsonl"}
PROBE = "Before you answer: do the documents above state the answer to the question? Reply with one word: yes or no."


def _post(base: str, path: str, body: dict) -> dict:
    import httpx

    response = httpx.post(base + path, json=body, timeout=600.0)
    response.raise_for_status()
    return response.json()


def _next_token(base: str, prompt: list, n_probs: int = 40) -> list[tuple[int, str, float]]:
    """The most likely next tokens after `prompt` (text and token ids mixed): id, text, probability."""
    body = {"prompt": prompt, "n_predict": 1, "n_probs": n_probs, "temperature": 0.0, "cache_prompt": True}
    first = _post(base, "/completion", body)["completion_probabilities"][0]
    return [(t["id"], t["token"], math.exp(t["logprob"])) for t in first["top_logprobs"]]


def _tokens(base: str, text: str) -> list[int]:
    return _post(base, "/tokenize", {"content": text, "add_special": False})["tokens"]


def measure(base: str, messages: list[dict], phrases: list[list[int]]) -> dict:
    prompt = _post(base, "/apply-template", {"messages": messages})["prompt"]
    decline, greedy = 0.0, False
    first = {i: p for i, _, p in _next_token(base, [prompt])}
    for ids in phrases:
        p, argmax, probs = 1.0, True, first
        for i, token in enumerate(ids):
            if i:
                probs = {t: q for t, _, q in _next_token(base, [prompt, *ids[:i]])}
            p *= probs.get(token, 0.0)
            argmax &= bool(probs) and max(probs, key=probs.get) == token
        decline += p
        greedy |= argmax
    probed = _post(base, "/apply-template", {"messages": [*messages, {"role": "user", "content": PROBE}]})["prompt"]
    top = _next_token(base, [probed])
    yes = sum(p for _, text, p in top if text.strip().lower() == "yes")
    no = sum(p for _, text, p in top if text.strip().lower() == "no")
    return {"decline": decline, "greedy_declines": greedy, "probe_no": no / (yes + no) if yes + no else 0.5}


def run(args: argparse.Namespace) -> None:
    from rag import llm as llm_module
    from rag.eval.datasets import load_eval_set
    from rag.eval.runner import prepare_index
    from rag.generation import guard
    from rag.generation.answer import choose_context
    from rag.generation.context import embedding_scorer
    from rag.generation.decline import NOT_FOUND
    from rag.generation.prompt import build_messages
    from rag.quiet import quiet_libraries
    from rag.rerank.reranker import reranker_from
    from rag.retrieve.retrievers import open_retriever
    from rag.settings import Settings

    quiet_libraries()
    settings = Settings()
    dataset = load_eval_set(SETS[args.set])
    done = set()
    if args.out.is_file():
        done = {(r["set"], r["id"]) for r in map(json.loads, args.out.read_text().splitlines())}
    questions = [q for q in dataset.questions[args.start : args.stop] if (args.set, q.id) not in done]
    if not questions:
        return
    store = prepare_index(dataset, settings)
    retriever = open_retriever("hybrid", store)
    scorer = embedding_scorer(retriever.embedder)
    reranker = reranker_from(settings.model_copy(update={"reranker": "rag-e5-ko-en"}))
    llm = llm_module.open_llm(settings)
    base = llm.endpoint.base_url.removesuffix("/v1")
    phrases = [_tokens(base, text)[: args.tokens] for text in NOT_FOUND.values()]
    defences = guard.parse_defences(settings.injection_defences)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n, q in enumerate(questions, 1):
        hits = retriever.retrieve(q.question, 20)
        passages, _ = choose_context(llm, settings, q.question, hits[: settings.top_n], scorer)
        row = measure(base, build_messages(q.question, passages, defences), phrases)
        ranked = reranker.rerank(q.question, hits, 1)
        row |= {"set": args.set, "id": q.id, "answerable": q.answerable, "rerank": ranked[0].rerank_prob}
        with args.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{n}/{len(questions)} {q.id} {row}", file=sys.stderr, flush=True)


def _auc(pos: list[float], neg: list[float]) -> float:
    """P(a random unanswerable question scores above a random answerable one)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else math.nan


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


FEATURES = {  # each signal on a logit scale, higher = more likely unanswerable
    "decline": lambda r: _logit(r["decline"]),
    "probe_no": lambda r: _logit(r["probe_no"]),
    "rerank": lambda r: -_logit(r["rerank"]),
}


def fit_logistic(rows: list[dict], names: list[str], l2: float = 1.0, steps: int = 50) -> list[float]:
    """Weights (bias first) of a logistic regression of unanswerable on the named features (Newton)."""
    import numpy as np

    x = np.array([[1.0] + [FEATURES[n](r) for n in names] for r in rows])
    y = np.array([0.0 if r["answerable"] else 1.0 for r in rows])
    w = np.zeros(x.shape[1])
    ridge = l2 * np.eye(len(w))
    ridge[0, 0] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + ridge
        w -= np.linalg.solve(hessian, x.T @ (p - y) + ridge @ w)
    return [float(v) for v in w]


def _declines(r: dict, score, cut: float, greedy: bool) -> bool:
    """Declined: the score is above the cut, or (with `greedy`) greedy decoding declines anyway."""
    return score(r) > cut or (greedy and r["greedy_declines"])


def _cut(rows: list[dict], score, answered: float, greedy: bool) -> float:
    """The lowest cut at which `answered` of the answerable rows are still answered."""
    asked = [r for r in rows if r["answerable"]]
    for cut in [*sorted({score(r) for r in asked}), math.inf]:
        if sum(not _declines(r, score, cut, greedy) for r in asked) >= answered * len(asked):
            return cut
    return math.inf


def _rates(rows: list[dict], score, cut: float, greedy: bool) -> str:
    asked, unasked = [r for r in rows if r["answerable"]], [r for r in rows if not r["answerable"]]
    cells = [f"{sum(not _declines(r, score, cut, greedy) for r in asked)}/{len(asked)}" if asked else ""]
    cells.append(f"{sum(_declines(r, score, cut, greedy) for r in unasked)}/{len(unasked)}" if unasked else "")
    return " / ".join(c for c in cells if c)


def report(args: argparse.Namespace) -> None:
    from rag.eval.datasets import load_eval_set

    rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    clap = {r["id"]: r for r in rows if r["set"] == "clapnq"}
    order = [q.id for q in load_eval_set(SETS["clapnq"]).questions]
    fit = [clap[i] for i in order[args.fit_start :] if i in clap]
    held = [clap[i] for i in order[: args.fit_start] if i in clap]
    docs = [r for r in rows if r["set"] == "docs_corpus"]
    print(
        f"fit: ClapNQ {len(fit)} (from question {args.fit_start}); report: ClapNQ {len(held)}, docs_corpus {len(docs)}"
    )
    print(f"cut: the lowest that answers {args.answered:.0%} of the fit set's answerable questions under the rule\n")
    scores = dict(FEATURES)
    for names in (["decline", "probe_no"], ["decline", "probe_no", "rerank"]):
        w = fit_logistic(fit, names)
        scores[" + ".join(names)] = lambda r, w=w, names=names: (
            w[0] + sum(wi * FEATURES[n](r) for wi, n in zip(w[1:], names))
        )
        print(f"logistic {' + '.join(names)}: weights {[round(v, 3) for v in w]}")
    print("\n| score | rule | AUC fit | AUC report | fit answered / declined | report | docs_corpus answered |")
    print("|---|---|---|---|---|---|---|")
    never = lambda r: -math.inf  # noqa: E731
    print("| none | greedy decline | | | " + " | ".join(_rates(s, never, 0.0, True) for s in (fit, held, docs)) + " |")
    for name, score in scores.items():
        pairs = [
            ([score(r) for r in s if not r["answerable"]], [score(r) for r in s if r["answerable"]])
            for s in (fit, held)
        ]
        aucs = [_auc(*pair) for pair in pairs]
        for greedy in (True, False):
            cut = _cut(fit, score, args.answered, greedy)
            rule = "greedy or above cut" if greedy else "above cut"
            cells = [_rates(s, score, cut, greedy) for s in (fit, held, docs)]
            print(f"| {name} | {rule} | {aucs[0]:.3f} | {aucs[1]:.3f} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(SETS), default="clapnq")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=3, help="decline tokens whose probabilities are multiplied")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "answers" / "abstain-logprob.jsonl")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--fit-start", type=int, default=100, help="ClapNQ questions from here on are the fit set")
    parser.add_argument("--answered", type=float, default=0.9, help="share of answerable questions the cut answers")
    args = parser.parse_args()
    report(args) if args.report else run(args)


if __name__ == "__main__":
    main()

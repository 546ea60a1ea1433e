"""What a warm `rag serve` saves: search latency under concurrent clients, and time to first token
through the server against a cold `rag ask`, side by side on the same index and questions.

    .venv/bin/python bench/serve_speed.py [--index .rag/demo-index] [--clients 4] [--rounds 5]

1. Starts `rag serve` (the real command, a subprocess on a free loopback port) and waits for
   /healthz: the start-up is the model loading a cold `rag ask` pays on every call.
2. `POST /v1/search` for each docs_corpus question from `--clients` threads at once, `--rounds`
   times: p50 / p95 per request.
3. Time to first token, streamed with the openai client through the server, for the two demo
   questions; then the same questions through a cold `rag ask` (a new process each: load models,
   retrieve, rerank, generate), timed to the first byte of the answer on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parent.parent
RAG = Path(sys.executable).parent / "rag"
DEMO = (
    "예약한 책이 도착했다는 알림을 받으면 며칠 안에 찾아가야 하나요?",
    "Who was the architect behind the current Main Library building?",
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cold_first_byte(question: str, index: Path) -> float:
    """Seconds from starting `rag ask` to the first byte of its answer on stdout."""
    started = time.perf_counter()
    process = subprocess.Popen([str(RAG), "ask", question, "--index", str(index)], stdout=subprocess.PIPE)
    process.stdout.read(1)
    first = time.perf_counter() - started
    process.stdout.read()
    process.wait()
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / ".rag" / "demo-index")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not args.index.exists():
        subprocess.run([str(RAG), "ingest", str(ROOT / "docs_corpus"), "--index", str(args.index)], check=True)
    questions = [json.loads(line)["question"] for line in (ROOT / "docs_corpus" / "questions.jsonl").open()]

    port = _port()
    started = time.perf_counter()
    server = subprocess.Popen([str(RAG), "serve", "--index", str(args.index), "--port", str(port)],
                              env={**os.environ, "RAG_SERVE_API_KEY": ""})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        startup = time.perf_counter() - started

        def one(question: str) -> float:
            begin = time.perf_counter()
            httpx.post(f"{url}/v1/search", json={"query": question}, timeout=120).raise_for_status()
            return (time.perf_counter() - begin) * 1000

        one(questions[0])  # warm the code paths once
        with ThreadPoolExecutor(args.clients) as pool:
            latencies = list(pool.map(one, questions * args.rounds))

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        warm = []
        for question in DEMO:
            begin = time.perf_counter()
            stream = client.chat.completions.create(
                model="rag", stream=True, messages=[{"role": "user", "content": question}]
            )
            first = None
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - begin
            warm.append(first)
    finally:
        server.terminate()
        server.wait(timeout=30)
    cold = [cold_first_byte(q, args.index) for q in DEMO]

    print(f"server start-up (models loaded, /healthz ready): {startup:.1f} s\n")
    print(f"| `POST /v1/search`, {args.clients} concurrent clients | requests | p50 | p95 |\n|---|---|---|---|")
    print(f"| warm server | {len(latencies)} | {_pct(latencies, 0.5):.0f} ms | {_pct(latencies, 0.95):.0f} ms |\n")
    print("| question | first token, warm server | first byte, cold `rag ask` | ratio |\n|---|---|---|---|")
    for question, w, c in zip(DEMO, warm, cold, strict=True):
        print(f"| {question[:40]} | {w:.1f} s | {c:.1f} s | {c / w:.1f}x |")
    print(f"\nmean search latency {statistics.mean(latencies):.0f} ms")


if __name__ == "__main__":
    main()

"""Do re-quantized weights run faster on this CPU? Q4_K_M as shipped vs Q8_0 and Q4_0 made from it.

    .venv/bin/pip install gguf        # only this bench needs it
    .venv/bin/python bench/quant_speed.py [--work /tmp/quant]

llama.cpp repacks some weight types at load for faster CPU kernels (Q4_0 into interleaved 8x8
blocks; Q8_0 has simpler dot products), so the issue asked whether a one-off conversion of the
shipped Q4_K_M file pays. Each variant is made with the `gguf` package (dequantize, quantize again;
token embeddings kept), served by xllamacpp with 2 threads, and asked the same three prompts of
~1,000-2,300 tokens built from docs_corpus; llama.cpp's own timings give prompt and generation
tokens/s. Measured 2026-12-02 (2 cores), prompt / generation tok/s for 1,025 and 2,223 prompt
tokens: Q4_K_M 39.7 / 10.0 and 37.0 / 8.2; Q8_0 27.6 / 5.7 and 25.7 / 5.5; Q4_0 (its Q6_K tensors
as Q8_0) 33.0 / 7.3 and 30.9 / 8.3. The shipped file is fastest, so no conversion is made.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

import gguf
import numpy as np
import xllamacpp as xlc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.models.local_llm import gguf_path, local_model  # noqa: E402

VARIANTS = {"Q8_0": ("Q8_0", "Q8_0"), "Q4_0": ("Q4_0", "Q8_0")}  # name -> (Q4_K target, Q6_K target)


def _value(field: gguf.ReaderField):
    def one(i: int):
        part = field.parts[i]
        return bytes(part).decode("utf-8", "surrogateescape") if kind == gguf.GGUFValueType.STRING else part.tolist()[0]

    kind = field.types[-1]
    return [one(i) for i in field.data] if field.types[0] == gguf.GGUFValueType.ARRAY else one(field.data[0])


def requantize(src: Path, dst: Path, q4_target: str, q6_target: str) -> None:
    reader = gguf.GGUFReader(str(src))
    writer = gguf.GGUFWriter(str(dst), _value(reader.fields["general.architecture"]))
    for name, field in reader.fields.items():
        if not name.startswith("GGUF.") and name != "general.architecture":
            sub = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, _value(field), field.types[0], sub_type=sub)
    for tensor in reader.tensors:
        target = {"Q4_K": q4_target, "Q6_K": q6_target}.get(tensor.tensor_type.name)
        if tensor.name == "token_embd.weight" or target is None:
            writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
            continue
        qtype = gguf.GGMLQuantizationType[target]
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        data = gguf.quants.quantize(values, qtype)
        writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def probe(path: Path) -> list[dict]:
    params = xlc.CommonParams()
    params.model.path = str(path)
    params.n_ctx = 4096
    params.n_parallel = 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2
    params.verbosity = -1
    server = xlc.Server(params)
    files = sorted((ROOT / "docs_corpus").rglob("*.md")) + sorted((ROOT / "docs_corpus").rglob("*.txt"))
    texts = [f.read_bytes().decode("utf-8", "ignore")[:1400] for f in files]
    rows = []
    for i in range(3):  # a new prompt each time: nothing comes from the prompt cache
        context = "\n\n".join(texts[(i * 3 + j) % len(texts)] for j in range(i + 3))
        body = {
            "messages": [
                {"role": "system", "content": "Answer from the documents."},
                {"role": "user", "content": f"{i}\n{context}\n\nQuestion: 이 문서들의 주제는 무엇인가요? 한 문장으로."},
            ],
            "max_tokens": 48,
            "temperature": 0,
        }
        url = server.listening_address + "/v1/chat/completions"
        request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        timings = json.load(urllib.request.urlopen(request, timeout=900))["timings"]
        rows.append({k: timings[k] for k in ("prompt_n", "prompt_per_second", "predicted_n", "predicted_per_second")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/quant"), help="where the converted files go")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    shipped = gguf_path(local_model("qwen2.5-1.5b"))
    paths = {"Q4_K_M (shipped)": shipped}
    for name, (q4, q6) in VARIANTS.items():
        paths[name] = args.work / f"qwen2.5-1.5b.{name}.gguf"
        if not paths[name].exists():
            start = time.perf_counter()
            requantize(shipped, paths[name], q4, q6)
            print(f"{name}: converted in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print("| weights | prompt tokens | prompt tok/s | generation tok/s |\n|---|---|---|---|")
    for name, path in paths.items():
        for row in probe(path):
            speeds = f"{row['prompt_per_second']:.1f} | {row['predicted_per_second']:.1f}"
            print(f"| {name} | {row['prompt_n']} | {speeds} |")


if __name__ == "__main__":
    main()

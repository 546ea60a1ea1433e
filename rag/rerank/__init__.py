"""The second stage: a cross-encoder reorders the first stage's candidates.

- `reranker`: `Reranker` (sentence-transformers CrossEncoder or int8 ONNX) and the blend with the
  first-stage score.
- `bundled`: the packaged reranker, shipped as its difference from its base model and assembled,
  checksummed, on first use.
- `pair_batches`: query-passage pairs batched by token length (also used by training).
"""

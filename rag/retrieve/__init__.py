"""The first stage: candidates from an index, best first.

- `hits`: `Hit`, the unit that flows on through rerank to the prompt and the printed sources.
- `lexical`: BM25 tokens (Kiwi morphemes for Korean, stemmed words for English), shared with ingest.
- `fusion`: the per-query weighting that merges the dense and BM25 lists.
- `retrievers`: dense, BM25 and hybrid retrievers and `open_retriever(name, …)`.
"""

"""`rag eval`: retrieval and answer accuracy with and without rerank, on real datasets."""

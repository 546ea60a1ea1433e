"""rag: answer questions over your own documents, with retrieval, reranking and cited sources."""

__version__ = "0.1.0"

"""`rag reranker train`: fine-tune a cross-encoder on (query, positives, negatives) with mined hard negatives."""

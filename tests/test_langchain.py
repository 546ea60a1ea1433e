"""Our retriever and reranker composed inside a LangChain (LCEL) chain."""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import BaseDocumentCompressor
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from ingest.writer import IndexWriter
from rag.langchain_adapters import RagReranker, RagRetriever
from tests.conftest import make_settings

DOCS = {
    "fees.txt": "Late fees are 100 won per day per book.",
    "hours.txt": "The main library opens at 9 and closes at 22 on weekdays.",
    "parking.txt": "Parking is free for the first two hours.",
    "printing.txt": "Printing costs 50 won per black and white page.",
}


def test_retriever_and_reranker_compose_in_a_chain(tmp_path, cross_encoder_dir):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    IndexWriter(make_settings(tmp_path / "index")).ingest([folder])

    retriever = RagRetriever.from_index(tmp_path / "index", k=4)
    reranker = RagReranker.load(str(cross_encoder_dir), top_n=2)
    assert isinstance(retriever, BaseRetriever) and isinstance(reranker, BaseDocumentCompressor)

    first = retriever.invoke("When does the library close?")
    assert Path(first[0].metadata["source"]).name == "hours.txt"
    assert len(first) == 4 and first[0].metadata["retrieval_score"] >= first[1].metadata["retrieval_score"]

    prompt = ChatPromptTemplate.from_messages([("user", "Context:\n{context}\n\nQuestion: {question}")])
    chain = (
        {"docs": retriever, "question": RunnablePassthrough()}
        | RunnableLambda(lambda x: {**x, "docs": reranker.compress_documents(x["docs"], x["question"])})
        | RunnableLambda(lambda x: {"context": "\n".join(d.page_content for d in x["docs"]), "question": x["question"]})
        | prompt
    )
    rendered = chain.invoke("When does the library close?").to_messages()[0].content
    assert rendered.startswith("Context:\n") and rendered.endswith("Question: When does the library close?")
    assert sum(text in rendered for text in DOCS.values()) == 2  # top_n passages reached the prompt

    reranked = reranker.compress_documents(first, "When does the library close?")
    scores = [d.metadata["rerank_score"] for d in reranked]
    assert len(reranked) == 2 and scores == sorted(scores, reverse=True)
    assert all(0 < d.metadata["rerank_sigmoid"] < 1 and "retrieval_score" in d.metadata for d in reranked)

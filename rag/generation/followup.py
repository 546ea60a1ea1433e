"""Follow-up questions: what is retrieved for them, and what the model is told.

"그 안에 못 찾아가면 어떻게 되나요?" points back into the conversation ("그 안에": within that time).
Measured on tests/data/followups.jsonl (18 follow-ups over docs_corpus, Korean and English, four of
them changing the subject), gold document first (`python bench/followups.py`):

| retrieved for | gold first | where it fails |
|---|---|---|
| the follow-up as asked | 16 / 18 | "거기는 주말에…" (3rd), "How do I add one more?" (2nd) |
| the earlier question + the follow-up | 16 / 18 | a change of subject: the old one wins (2nd, 8th) |
| both lists fused by reciprocal rank | **18 / 18** | one retrieval more (~0.1-0.3 s), no LLM call |
| a rewrite by Qwen2.5-1.5B (2-5 s; the first 14) | 13 / 14 | 4 of 7 Korean rewrites changed the question |

The choice was made on this set (there is no held-out follow-up set yet), whose small corpus is
easy; the LLM rewrite lost on meaning, not rank: one Korean follow-up came back as the earlier
question, one as a statement, two with a wrong fact spliced in.

So a follow-up is retrieved twice, as asked and with the earlier question before it, and the two
lists are fused (`rag.retrieve.fusion.reciprocal_rank`); the model reads the follow-up as asked,
over those passages. Nothing is rewritten by the LLM: on this machine its rewrites cost seconds and
broke Korean questions. Showing the model the earlier question beside the follow-up was tried too:
to "그 안에 못 찾아가면 어떻게 되나요?" it then repeated the earlier question as its answer; alone,
over the same document, it answered from the holds rules (n = 1 each, a hint, not a measurement).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


def earlier_question(history: list[Turn]) -> str | None:
    """The question a follow-up most likely continues: the last one asked."""
    return next((turn.question for turn in reversed(history) if turn.question.strip()), None)


def retrieval_queries(history: list[Turn], question: str) -> list[str]:
    """What is retrieved for `question`: itself, and after earlier turns also the last earlier
    question joined to it."""
    earlier = earlier_question(history)
    return [question] if earlier is None else [question, f"{earlier} {question}"]

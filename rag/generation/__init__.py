"""From ranked passages to a checked answer: prompt (with injection defences), budget, stream, citations.

`generate_answer` is the one place an answer is produced; `rag ask`, `rag chat`, `rag eval
--generate` and the benchmarks all call it, so what they measure is what a user gets.
"""

from rag.generation.answer import Generated, fingerprint, generate_answer

__all__ = ["Generated", "fingerprint", "generate_answer"]

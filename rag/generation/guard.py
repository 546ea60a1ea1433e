"""Defences against text inside a document that tries to instruct the model (prompt injection).

A retrieved passage is data. Small local models obey instructions wherever they appear, so no
single defence is enough; each of these is a setting (`RAG_INJECTION_DEFENCES`) so `bench/injection.py`
can measure what it adds:

- `neutralise`: chat-template control tokens (`<|im_start|>`, `<|endoftext|>`, ...) are removed
  and lines that open a fake turn or close the document ("User:", "Assistant:", "SYSTEM:",
  "</document>", "### Instruction") are quoted, so a passage cannot fake the conversation;
- `datamark`: every line of a passage starts with a marker the system prompt names as "document
  text" (spotlighting by datamarking), so the model can tell quoted text from its instructions;
- `reminder`: after the documents and before the question, the rule is repeated (the model weighs
  what it read last);
- `flag`: passages whose sentences address an AI assistant (ignore instructions, reply only with,
  you are now, system notice ...) are reported under the sources, and those sentences are replaced
  by a placeholder in what the model reads. The patterns are generic (written before the injection
  catalog was), not a list of the catalog's attacks.
"""

from __future__ import annotations

import re

from rag.errors import RagError

DEFENCES = ("datamark", "neutralise", "reminder", "flag")
MARK = "│ "

_CONTROL_TOKEN = re.compile(r"<\|[^|<>\n]{1,40}\|>|<s>|</s>|\[/?INST\]|<<\/?SYS>>", re.IGNORECASE)
_FAKE_TURN = re.compile(
    r"^(\s*)((?:#+\s*)?(?:system|user|assistant|human|ai|instruction|instructions|response|사용자|시스템|어시스턴트|"
    r"답변|질문)\s*[:：>]|</?\s*(?:document|documents|context|system|instructions?)\b[^>]*>|-{3,}\s*end\b|={3,})",
    re.IGNORECASE | re.MULTILINE,
)
_TAG = re.compile(r"</?\s*(?:document|documents|context|system|instructions?)\b[^>]*>", re.IGNORECASE)

# Sentences that speak to the model rather than to a human reader of the document.
_ADDRESSES_ASSISTANT = re.compile(
    r"(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|earlier|preceding|"
    r"other|system|original)?\s*(instructions?|prompts?|rules?|directions?|guidelines?)"
    r"|\b(you are now|from now on,? you|act as|pretend (to be|you are)|your new (role|task|instructions?))"
    r"|\b(ai|language model|llm|assistant|chatbot|gpt|model)s?\b[^.\n]{0,60}\b(must|should|shall|will|need to|"
    r"are required to|are instructed to)\b"
    r"|\b(respond|reply|answer|say|output|print|write)\b[^.\n]{0,40}\b(only|exclusively|always|instead)\b"
    r"|\b(only|always)\s+(respond|reply|answer|say|output)\b"
    r"|\bsystem\s+(notice|message|prompt|override|instruction|update|alert)"
    r"|\b(when|if)\s+(an?\s+)?(ai|assistant|model|llm|chatbot)\b"
    r"|\b(append|include|add|insert|render)\b[^.\n]{0,50}\b(link|url|image|markdown)\b"
    r"|(이전|앞의|위의|기존|모든)\s*(의\s*)?(지시|지침|명령|규칙|instructions?)[^.\n]{0,20}(무시|잊)"
    r"|(지시|지침|명령|규칙)[^.\n]{0,10}(무시하|무시할|잊어)"
    r"|(AI|인공지능|어시스턴트|챗봇|언어\s*모델|모델|비서)[^.\n]{0,40}(반드시|항상|오직|만)\s*[^.\n]{0,30}(답|응답|출력|말)"
    r"|(답변|응답|대답)[^.\n]{0,30}(반드시|항상|오직|만으로|대신)"
    r"|(반드시|항상|오직)[^.\n]{0,30}(라고|으로|로)\s*(만\s*)?(답|응답|대답|출력)"
    r"|시스템\s*(공지|메시지|알림|지시|프롬프트|안내)"
    r"|(역할|페르소나)[^.\n]{0,20}(바뀌|변경|맡)"
    r"|(링크|URL|이미지)[^.\n]{0,30}(포함|추가|붙여|삽입|첨부)",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?。\n]*(?:[.!?。]+|\n|$)")
PLACEHOLDER = "[text addressed to an AI assistant removed]"


def parse_defences(text: str) -> frozenset[str]:
    """`RAG_INJECTION_DEFENCES`: a comma list of DEFENCES, `all`, or `none`."""
    names = {n.strip().lower() for n in text.split(",") if n.strip()}
    if names <= {"none", ""}:
        return frozenset()
    if "all" in names:
        return frozenset(DEFENCES)
    unknown = names - set(DEFENCES)
    if unknown:
        raise RagError(
            f"RAG_INJECTION_DEFENCES: unknown {', '.join(sorted(unknown))}; use {', '.join(DEFENCES)}, all or none"
        )
    return frozenset(names)


def neutralise(text: str) -> str:
    """Drop control tokens, quote lines that open a fake turn or close the document."""
    text = _CONTROL_TOKEN.sub(" ", text)
    text = _FAKE_TURN.sub(lambda m: f'{m.group(1)}(quoted) "{m.group(2).strip()}"', text)
    return _TAG.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


def addresses_assistant(text: str) -> bool:
    return bool(_ADDRESSES_ASSISTANT.search(text))


def redact(text: str) -> str:
    """Replace each sentence that addresses the assistant with a placeholder."""
    out = []
    for sentence in _SENTENCE.findall(text):
        if sentence and _ADDRESSES_ASSISTANT.search(sentence):
            out.append(PLACEHOLDER + ("\n" if sentence.endswith("\n") else " "))
        else:
            out.append(sentence)
    return "".join(out).strip()


def datamark(text: str) -> str:
    return "\n".join(MARK + line for line in text.splitlines())

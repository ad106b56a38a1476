"""Text inside a document that addresses the assistant instead of the reader.

Sources reach the model fenced and labelled as data (kb.answer.prompts), yet a small model told
to copy its sources' words copies an injected "ignore the previous instructions and say …" as
readily as a fact. With `KB_SOURCE_GUARD` on (the default), sentences that speak to an AI
(instructions to ignore or replace its instructions, fake system or chat-role turns, chat
template tokens) never reach the prompt, bracketed citation markers written inside a document
are removed (only kb numbers sources), and an answer that still carries such text is refused.
Document text is only ever text here: nothing in kb runs it, opens it as a path or fetches it.
The patterns are hand-written because no maintained library for this runs offline on two cores;
bench/injection_bench.py measures what they catch and what they cost.
"""

from __future__ import annotations

import re

from kb.text import split_sentences

_ADDRESSED_TO_AI = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?。]{0,40}?"
    r"\b(?:previous|prior|preceding|above|earlier|all|any|your|the)\b[^.!?。]{0,30}?"
    r"\b(?:instructions?|prompts?|rules|directions|guidelines|context)\b"
    r"|\b(?:new|updated|real|actual)\s+(?:instructions?|system\s+prompt)\b"
    r"|\bsystem\s*(?:prompt|message|override|instructions?)\b"
    r"|^\s*(?:system|assistant|developer)\s*:"
    r"|\b(?:you are now|from now on,? you|act as an?|pretend (?:to be|you are)|as an ai\b)"
    r"|\b(?:ai|language model|llm|chatbot|ai assistant)s?\b[^.!?。]{0,40}?\b(?:must|should|"
    r"shall|is required to|are required to)\b"
    r"|\b(?:reply|respond|answer)\s+(?:only\s+with|with only|by saying)\b"
    r"|<\|im_(?:start|end)\|>|\[/?INST\]|<</?SYS>>"
    r"|忽略(?:之前|以上|前面|上述|先前|所有|全部)?的?(?:所有)?(?:指令|指示|说明|提示|规则|要求)"
    r"|系统提示|系统指令|你现在是|从现在开始你|作为(?:一个)?(?:人工智能|AI|助手)"
    r"|(?:请|必须)?(?:只|仅)(?:回答|回复|输出)",
    re.IGNORECASE | re.MULTILINE,
)
# "[3]" or "[source 2]" written inside a document would read as one of kb's source numbers.
_CITATION_MARKER = re.compile(r"\[(?:source\s*|来源\s*)?\d{1,2}\]", re.IGNORECASE)


def addresses_ai(text: str) -> bool:
    """Whether `text` speaks to an AI assistant rather than to a human reader."""
    return bool(_ADDRESSED_TO_AI.search(text))


def guarded_source(text: str) -> str:
    """A chunk's text without sentences addressed to an AI, nor citation markers of its own."""
    kept = [s for s in split_sentences(text) if not addresses_ai(s)]
    if len(kept) == len(split_sentences(text)):
        return _CITATION_MARKER.sub("", text)
    return _CITATION_MARKER.sub("", "\n".join(kept))

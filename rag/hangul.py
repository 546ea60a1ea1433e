"""The Hangul syllable pattern: Korean text takes other paths than English (tokenizer, prompt
language, answer metric, padding budget), and every one of them asks the same question."""

from __future__ import annotations

import re

HANGUL = re.compile(r"[\uac00-\ud7a3]")

"""Where a suite prompt's question starts, for the question-agnostic setting.

Every suite prompt is some context (possibly none: the images alone) followed by a question sentence
and its answer-format instruction. In the question-agnostic setting the context is compressed first and
the question arrives afterwards; this is the one place that decides where the cut falls.
"""

from __future__ import annotations

from hybridkv.errors import InputError


def split_question(prompt: str) -> tuple[str, str]:
    """``(context, question)`` with ``context + question == prompt``; the question is the sentence with
    the first ``?`` and everything after it, and keeps its leading space so that tokenization is unchanged.
    """
    mark = prompt.find("?")
    if mark < 0:
        raise InputError(f"no question mark in prompt {prompt[:60]!r}; a question-agnostic split needs one")
    after_sentence = prompt.rfind(". ", 0, mark)
    after_line = prompt.rfind("\n", 0, mark)
    cut = max(after_sentence + 1 if after_sentence >= 0 else 0, after_line + 1 if after_line >= 0 else 0)
    return prompt[:cut], prompt[cut:]

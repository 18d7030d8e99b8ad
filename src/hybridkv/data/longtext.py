"""A text-only long-context suite for real language models: pass-key retrieval with one or several keys.

``needle_<n>k``: filler text of about n thousand tokens with one pass key hidden at a random depth; the
question asks for it. ``multikey_<n>k``: eight named pass keys scattered through the filler; the question
asks for one of them, so a cache must keep the right one among look-alikes. The question comes after the
context (and in the question-agnostic setting, after compression).

Lengths are in tokens of a typical 50k-entry BPE (about 3.9 characters a token on this filler: SmolLM2
counts 1,971 for needle_2k and 7,708 for multikey_8k); the exact count depends on the model's tokenizer
and is recorded per item by the evaluation. Items are a pure function of (task, split, index, seed), and
splits are assigned by content as in the visual suite.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hybridkv.errors import ConfigError

from .seeding import SPLITS, make_rng, split_of

CHARS_PER_TOKEN = 3.85
FILLER = (
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
    "The river flows to the sea.",
    "A small bird sings in the morning.",
    "The old road winds through the hills.",
)
NAMES = (
    "Alice", "Bruno", "Chen", "Dara", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca",
    "Mira", "Nils", "Omar", "Priya",
)  # fmt: skip
LENGTHS_K = (2, 4, 8)


@dataclass(frozen=True)
class TextItem:
    """One long-context item: the context, the question that follows it, and the key to retrieve."""

    id: str
    task: str
    split: str
    context: str
    question: str
    answer: str
    meta: Mapping[str, Any]

    @property
    def prompt(self) -> str:
        return self.context + self.question


def _filler(rng: Any, n_chars: int) -> list[str]:
    sentences: list[str] = []
    size = 0
    while size < n_chars:
        sentence = FILLER[int(rng.integers(len(FILLER)))]
        sentences.append(sentence)
        size += len(sentence) + 1
    return sentences


def _key(rng: Any) -> str:
    return str(int(rng.integers(10_000, 100_000)))


def _sample(kind: str, tokens: int, rng: Any) -> dict[str, Any]:
    n_keys = 1 if kind == "needle" else 8
    names = [NAMES[int(i)] for i in rng.permutation(len(NAMES))[:n_keys]]
    keys = [_key(rng) for _ in names]
    depths = sorted(float(d) for d in rng.uniform(0.05, 0.95, size=n_keys))
    asked = int(rng.integers(n_keys))
    return {"kind": kind, "tokens": tokens, "names": names, "keys": keys, "depths": depths, "asked": asked}


def _render(meta: Mapping[str, Any], rng: Any) -> tuple[str, str, str]:
    budget = int(meta["tokens"] * CHARS_PER_TOKEN)
    sentences = _filler(rng, budget)
    single = meta["kind"] == "needle"
    for name, key, depth in sorted(zip(meta["names"], meta["keys"], meta["depths"], strict=True), key=lambda t: -t[2]):
        line = f"The pass key is {key}. Remember it." if single else f"The pass key for {name} is {key}."
        sentences.insert(int(depth * len(sentences)), line)
    context = "There is a pass key hidden in the text below. Find it and remember it.\n" + " ".join(sentences)
    if single:
        question = "\nWhat is the pass key? Answer with the number only."
    else:
        question = f"\nWhat is the pass key for {meta['names'][meta['asked']]}? Answer with the number only."
    return context, question, meta["keys"][meta["asked"]]


def _parse(task: str) -> tuple[str, int]:
    match = re.fullmatch(r"(needle|multikey)_(\d+)k", task)
    if match is None or int(match.group(2)) not in LENGTHS_K:
        raise ConfigError(f"unknown long-context task {task!r}; choose from {', '.join(TEXT_TASKS)}")
    return match.group(1), 1000 * int(match.group(2))


def generate_text_items(task: str, split: str, n: int, *, seed: int = 0) -> list[TextItem]:
    """Items 0..n-1 of ``task`` in ``split``; the same arguments always give the same items."""
    kind, tokens = _parse(task)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    items = []
    for index in range(n):
        for attempt in range(1000):  # rejection: the content decides the split
            rng = make_rng("longtext", task, split, index, seed, attempt)
            meta = _sample(kind, tokens, rng)
            key = repr(sorted(meta.items()))
            if split_of(task, key) == split:
                break
        context, question, answer = _render(meta, rng)
        items.append(TextItem(f"{task}/{split}/s{seed}/{index:05d}", task, split, context, question, answer, meta))
    return items


def contains_answer(prediction: str, answer: str) -> bool:
    """True when the key appears in the prediction as a whole number (answers come as sentences too)."""
    return re.search(rf"(?<!\d){re.escape(answer)}(?!\d)", prediction) is not None


TEXT_TASKS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {f"{kind}_{k}k": (kind, 1000 * k) for kind in ("needle", "multikey") for k in LENGTHS_K}
)

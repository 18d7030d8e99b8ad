"""The embedded model's tokenizer: a small byte-level BPE trained in code on the task suite's text.

A 150k-entry vocabulary would dwarf a model this size, and raw bytes make every answer word five to
eight decoding steps. A BPE trained on the suite's prompts and answer vocabularies makes nearly every
word of the suite one token (answers are single tokens) while the byte alphabet still encodes any
string. Spaces are tokens of their own, so a word is the same token wherever it stands: after a space
in a prompt, or first in an answer. With a GPT-2-style pre-tokenizer, ``" tomato"`` in a list and
``"tomato"`` as its answer are different tokens, and copying an item out of the prompt (``text_copy``)
needs a learned lookup from one to the other for every word, which a small model trained from scratch
did not find in 1,600 steps. The special tokens and the chat template are those of the Qwen-VL family
(:data:`hybridkv.models.tokenizer.QWEN_VL_TOKENS`), so the model is fed exactly like a Qwen2.5-VL.

Training is deterministic: a fixed corpus (items 0..n-1 of seed 0 of every task, plus every answer
word) and BPE's count-then-pair merge order. The shipped checkpoint stores its tokenizer.json anyway,
so a loaded model never depends on retraining.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from hybridkv.data import TASKS, answer_vocabulary, generate_items
from hybridkv.embedded.readouts import readout_prompts
from hybridkv.models.tokenizer import QWEN_VL_NUMBERED_CHAT_TEMPLATE, QWEN_VL_TOKENS, TokenizerSpec, wrap_backend

VOCAB_SIZE = 1024
# Qwen-VL's specials; images are numbered in the prompt so that multi-image questions can name them.
EMBEDDED_TOKENS = replace(QWEN_VL_TOKENS, chat_template=QWEN_VL_NUMBERED_CHAT_TEMPLATE)
CORPUS_ITEMS_PER_TASK = 32
# Rendering long_mixed's full-size items only to read their prompts would cost seconds; one grid
# image gives the same prompt template.
_CHEAP_OPTIONS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {"long_mixed": MappingProxyType({"min_images": 1, "max_images": 1})}
)
# BPE only merges pairs seen at least twice; an answer written once would stay split into pieces.
_ANSWER_REPEATS = 2


def suite_corpus(items_per_task: int = CORPUS_ITEMS_PER_TASK) -> Iterator[str]:
    """Prompts of the train split, then every answer on a line of its own (as the assistant writes it)."""
    for task in TASKS:
        for item in generate_items(task, "train", items_per_task, **_CHEAP_OPTIONS.get(task, {})):
            yield item.prompt
        for answer in sorted(answer_vocabulary(task)):
            yield from (answer,) * _ANSWER_REPEATS
    # The chat template's own words ("user", "assistant"), as they appear around a turn.
    yield from ("<|im_start|>user\n", "<|im_start|>assistant\n") * _ANSWER_REPEATS
    yield " ".join(f"Image {i}:" for i in range(1, 17))
    yield from readout_prompts() * _ANSWER_REPEATS  # training-only turns (hybridkv.embedded.readouts)
    # Numbers the prompts and answers may use under non-default task options.
    yield " ".join(str(i) for i in range(100))


def embedded_tokenizer(vocab_size: int = VOCAB_SIZE, spec: TokenizerSpec = EMBEDDED_TOKENS) -> PreTrainedTokenizerFast:
    """Train the BPE in memory (~0.3 s) and wrap it with the family's specials and chat template.

    Special tokens get ids 0.. in ``spec`` order (pad, eos, then the vision markers), the 256 byte
    symbols follow, then the merges. Left padding, as batched generation needs.
    """
    specials = list(spec.all_special)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(" "), behavior="isolated"),  # see the module docstring
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(list(suite_corpus()), trainer=trainer)
    return wrap_backend(backend, spec)

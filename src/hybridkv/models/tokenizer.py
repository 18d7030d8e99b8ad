"""Byte-level tokenizers and chat templates for the tiny random models.

Real tokenizers cannot be downloaded here, and a 150k-entry vocabulary would dominate a tiny model's
parameters. A byte-level BPE with no merges has 256 entries, round-trips every string, and builds in
milliseconds; the family's special tokens are appended after the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

# ChatML, as used by Qwen2/2.5/3-VL: images become <|vision_start|><|image_pad|><|vision_end|>.
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The same, with every image numbered in the prompt ("Image 1: <|vision_start|>..."), as Qwen2-VL's own
# template does under ``add_vision_id`` (there "Picture k: "), so "image k" in a question names a
# labelled image rather than a count of image blocks.
QWEN_VL_NUMBERED_CHAT_TEMPLATE = QWEN_VL_CHAT_TEMPLATE.replace(
    "{% for message in messages %}", "{% set images = namespace(count=0) %}{% for message in messages %}", 1
).replace(
    "{% if c['type'] == 'image' %}",
    "{% if c['type'] == 'image' %}{% set images.count = images.count + 1 %}Image {{ images.count }}: ",
    1,
)

# ChatML with LLaVA's <image> placeholder, as used by LLaVA-OneVision (Qwen2 text model).
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'video' %}<video>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# LLaVA-1.5 ("USER: <image>\n... ASSISTANT:"), with the BOS written by the template.
LLAVA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'].upper() }}: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %} "
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# Llama-3 headers, as used by Llama-3.x instruct checkpoints.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# Plain ChatML for Qwen2 / Qwen3 text models.
CHATML_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TokenizerSpec:
    """Special tokens and chat template of one family's tiny tokenizer.

    The specials get ids right after the 256 bytes, in the order pad, eos, bos, ``extra``, so they are
    small and stable across runs.
    """

    eos: str
    pad: str
    bos: str | None = None
    extra: tuple[str, ...] = ()
    chat_template: str = CHATML_CHAT_TEMPLATE

    @property
    def all_special(self) -> tuple[str, ...]:
        named = [self.pad, self.eos] + ([self.bos] if self.bos else [])
        return tuple(dict.fromkeys([*named, *self.extra]))


QWEN_VL_TOKENS = TokenizerSpec(
    eos="<|im_end|>",
    pad="<|endoftext|>",
    extra=(
        "<|im_start|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ),
    chat_template=QWEN_VL_CHAT_TEMPLATE,
)
LLAVA_ONEVISION_TOKENS = TokenizerSpec(
    eos="<|im_end|>",
    pad="<|endoftext|>",
    extra=("<|im_start|>", "<image>", "<video>"),
    chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
)
LLAVA_TOKENS = TokenizerSpec(eos="</s>", pad="<pad>", bos="<s>", extra=("<image>",), chat_template=LLAVA_CHAT_TEMPLATE)
LLAMA3_TOKENS = TokenizerSpec(
    eos="<|eot_id|>",
    pad="<|finetune_right_pad_id|>",
    bos="<|begin_of_text|>",
    extra=("<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"),
    chat_template=LLAMA3_CHAT_TEMPLATE,
)
CHATML_TOKENS = TokenizerSpec(
    eos="<|im_end|>", pad="<|endoftext|>", extra=("<|im_start|>",), chat_template=CHATML_CHAT_TEMPLATE
)


def byte_level_tokenizer(spec: TokenizerSpec) -> PreTrainedTokenizerFast:
    """Build a byte-level tokenizer (256 byte tokens + ``spec``'s specials) in memory.

    Left padding because batched generation with a decoder-only model needs the prompts right-aligned.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    # Register the specials on the backend first so their ids are "bytes, then spec order".
    specials = spec.all_special
    backend.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return wrap_backend(backend, spec)


def wrap_backend(backend: Tokenizer, spec: TokenizerSpec) -> PreTrainedTokenizerFast:
    """A transformers tokenizer around ``backend`` with ``spec``'s special tokens and chat template."""
    named = {spec.pad, spec.eos, spec.bos}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=spec.eos,
        pad_token=spec.pad,
        bos_token=spec.bos,
        additional_special_tokens=[s for s in spec.all_special if s not in named],
        padding_side="left",
        model_max_length=32768,
    )
    tok.chat_template = spec.chat_template
    return tok

"""Question-agnostic use: prefill and compress a context once, then ask it many questions.

This is how a user chats about one image, and how kvpress's pipeline compresses: the cache is built
(and compressed) before any question exists, so compression cannot lean on the question; a method that
retrieves by the decoding query (HybridKV's dynamic heads, Quest) can still adapt to each question.

Each :meth:`Session.ask` appends the question and its answer after the compressed context and removes
them again afterwards (``Cache.crop``), so every question sees exactly the same compressed context.
With ``select_at="question"`` in the method's config, the context waits whole in the cold tier and is
compressed afresh for each question, with that question's queries (docs/method.md, section 6).

    from hybridkv import Session, get_method, load_model
    loaded = load_model("embedded")
    with Session(loaded, get_method("hybridkv", budget=0.1), context="", images=images) as chat:
        print(chat.ask(" In image 3, what colour is the square?").text)
        print(chat.ask(" In image 5, what colour is the square?").text)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import torch
from PIL import Image

from .cache import HybridCache
from .errors import CacheStateError, ConfigError, InputError
from .generation import GenerationResult, generate, generate_with_cache
from .methods import Method
from .models.base import require_token_prefix


@dataclass(frozen=True)
class Answer:
    """One answer of a session: its text, and what the cache held and how fast it decoded while answering."""

    text: str
    result: GenerationResult
    question_tokens: int


class Session:
    """A compressed context that answers several questions (batch of one).

    ``context`` is the text that comes before the question in the user turn (may be empty when the images
    are the whole context). Use it as a context manager: the method's attention routing stays attached to
    the model for the session's lifetime and is removed when it closes.
    """

    def __init__(
        self, loaded: Any, method: Method, *, context: str = "", images: Sequence[Image.Image] | None = None
    ) -> None:
        if not context.strip() and not images:
            raise InputError("a session needs a context: some text, some images, or both")
        self.loaded = loaded
        self.method = method
        self.context = context
        self.images = list(images or [])
        self._stack: ExitStack | None = None
        self.cache: Any = None
        self._context_ids: torch.Tensor | None = None
        self.context_tokens = 0
        self.prefill_s = float("nan")
        self.questions_asked = 0

    def __enter__(self) -> Session:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Prefill and compress the context (the one expensive step of a session)."""
        if self._stack is not None:
            raise CacheStateError("this session is already open; ask() it, or close() it first")
        model = self.loaded.model
        inputs = self.loaded.build_context_inputs(self.context, self.images)
        self.loaded.adapter.forget_prompt(model)  # the question continues this prompt, not an earlier one
        stack = ExitStack()
        stack.enter_context(self.method(model))
        try:
            self.cache = self.method.make_cache(model, inputs)
            if isinstance(self.cache, HybridCache):
                self.cache.select_at_question()  # parks the context where the method selects per question
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(**inputs, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
            if inputs["input_ids"].is_cuda:
                torch.cuda.synchronize(inputs["input_ids"].device)
            self.prefill_s = time.perf_counter() - t0
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        self._context_ids = inputs["input_ids"]
        self.context_tokens = int(inputs["input_ids"].shape[1])

    def ask(self, question: str, *, max_new_tokens: int = 32) -> Answer:
        """Answer ``question`` against the compressed context, then forget the question and the answer.

        ``question`` continues the context's text, so start it with a space or newline where one belongs.
        """
        if self._stack is None:
            raise CacheStateError("the session is not open; use `with Session(...) as s:` or call open()")
        if not question.strip():
            raise InputError("the question is empty; pass the text to ask about the context")
        full = self.loaded.build_inputs(self.context + question, self.images or None)
        require_token_prefix(self._context_ids, full["input_ids"])
        inputs = {k: v for k, v in full.items() if not k.startswith("pixel_values")}  # vision is cached
        try:
            result = generate_with_cache(self.loaded.model, inputs, self.cache, max_new_tokens=max_new_tokens)
        finally:
            extra = self.cache.get_seq_length() - self.context_tokens
            if extra > 0:
                self.cache.crop(-extra)
        self.questions_asked += 1
        return Answer(
            text=self.loaded.decode(result.new_tokens[0]),
            result=result,
            question_tokens=int(full["input_ids"].shape[1]) - self.context_tokens,
        )

    def close(self) -> None:
        """Detach the method from the model and drop the cache."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        self.cache = None


@dataclass(frozen=True)
class AgnosticInputs:
    """A prompt split for the question-agnostic setting: what is compressed, and what is asked afterwards."""

    context: str
    question: str
    images: list


def setting_inputs(loaded: Any, prompt: str, images: Sequence[Image.Image] | None, setting: str) -> Any:
    """The single place a prompt becomes inputs for a setting, for :func:`answer`.

    ``aware``: the question is in the prompt that is prefilled, so compression can see it (model inputs).
    ``agnostic``: the context (images and any text before the question) is compressed first; the question
    comes after (:class:`AgnosticInputs`).
    """
    if setting == "aware":
        return loaded.build_inputs(prompt, list(images or ()) or None)
    if setting == "agnostic":
        from .data import split_question

        context, question = split_question(prompt)
        return AgnosticInputs(context, question, list(images or ()))
    raise ConfigError(f"setting {setting!r} is not supported; use 'aware' or 'agnostic'")


def answer(loaded: Any, inputs: Any, method: Method, *, max_new_tokens: int) -> GenerationResult:
    """Greedy answer of :func:`setting_inputs` with ``method``'s cache. In the agnostic setting the context is
    prefilled and compressed, then the question asked against the compressed cache, and ``prefill_s``
    covers both prefills."""
    if not isinstance(inputs, AgnosticInputs):
        return generate(loaded.model, inputs, method, max_new_tokens=max_new_tokens)
    with Session(loaded, method, context=inputs.context, images=inputs.images) as session:
        result = session.ask(inputs.question, max_new_tokens=max_new_tokens).result
        return replace(result, prefill_s=session.prefill_s + result.prefill_s)

"""The evaluation task registry: each task turns (split, n, seed) into (prompt, images, answer) items.

Every task of the synthetic suite (:mod:`hybridkv.data`) is registered with the few tokens its answers
need. Video items: :meth:`hybridkv.models.LoadedModel.build_inputs` takes images only (the supported
processors are image-only), so a clip's frames are passed as images, in frame order, after the item's own
images. The prompt already numbers the frames from 1, so "frame k" is the k-th of those images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from PIL import Image

from ..errors import ConfigError

ANSWER_TOKENS = 8
"""Greedy tokens generated per item: answers are one word or number, so a few tokens suffice."""
LONGTEXT_TOKENS = 16
"""Pass-key answers: a real model may answer with a short sentence around the number."""


@dataclass(frozen=True)
class EvalItem:
    """What a model is asked and what counts as right; ``video_frames`` of ``images`` are a clip's frames."""

    id: str
    task: str
    prompt: str
    images: tuple[Image.Image, ...]
    answer: str
    video_frames: int = 0


@dataclass(frozen=True)
class EvalTask:
    """A registered task: where its items come from, how many tokens to generate, and how to score them.

    ``source`` is ``suite`` (the multimodal suite, exact match) or ``longtext`` (text-only pass-key
    retrieval for real language models, scored by whether the key appears in the answer).
    """

    name: str
    max_new_tokens: int = ANSWER_TOKENS
    source: str = "suite"

    def score(self, prediction: str, answer: str) -> bool:
        """Whether ``prediction`` answers the item."""
        if self.source == "longtext":
            from ..data.longtext import contains_answer

            return contains_answer(prediction, answer)
        from ..data import score

        return score(prediction, answer)

    def items(self, split: str, n: int, *, seed: int = 0) -> list[EvalItem]:
        """Items 0..n-1 of this task's split; the same arguments always give the same items."""
        if self.source == "longtext":
            from ..data.longtext import generate_text_items

            return [
                EvalItem(id=i.id, task=i.task, prompt=i.prompt, images=(), answer=i.answer)
                for i in generate_text_items(self.name, split, n, seed=seed)
            ]
        from ..data import generate_items

        return [
            EvalItem(
                id=item.id,
                task=item.task,
                prompt=item.prompt,
                images=(*item.images, *(item.video or ())),
                answer=item.answer,
                video_frames=len(item.video or ()),
            )
            for item in generate_items(self.name, split, n, seed=seed)
        ]


def eval_tasks() -> Mapping[str, EvalTask]:
    """Every registered task by name (read-only): the multimodal suite, then the long-context text tasks."""
    from ..data import TASKS
    from ..data.longtext import TEXT_TASKS

    tasks = {name: EvalTask(name) for name in TASKS}
    tasks.update({name: EvalTask(name, max_new_tokens=LONGTEXT_TOKENS, source="longtext") for name in TEXT_TASKS})
    return MappingProxyType(tasks)


def suite_tasks() -> tuple[str, ...]:
    """What a run evaluates when no tasks are named: the multimodal suite."""
    from ..data import TASKS

    return tuple(TASKS)


def get_task(name: str) -> EvalTask:
    """A task by name, or a ConfigError listing the valid names."""
    tasks = eval_tasks()
    if name not in tasks:
        raise ConfigError(f"unknown task {name!r}; choose from: {', '.join(tasks)}")
    return tasks[name]


def load_items(tasks: Sequence[str], split: str, limit: int, *, seed: int = 0) -> list[EvalItem]:
    """``limit`` items of each task, task after task: the one item set every method and budget is scored on."""
    return [item for name in tasks for item in get_task(name).items(split, limit, seed=seed)]

"""Quick exact-match evaluation of the embedded model: greedy answers to suite items, per task.

This is the training script's progress check (the full accuracy-vs-budget evaluation lives in the
evaluation harness). Items go through :meth:`LoadedModel.build_inputs` and ``generate`` exactly as a
user's would, video frames as images (see :mod:`hybridkv.embedded.model`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from hybridkv.data import TASKS, TaskItem, generate_items, score
from hybridkv.models import LoadedModel

from .model import item_images, visual_token_count

# Visual tokens per generate call: long items go a few at a time so that eval memory stays small.
_VISUAL_TOKENS_PER_CALL = 4096


@dataclass(frozen=True)
class TaskResult:
    """Exact-match accuracy of one task and a few (prediction, answer) pairs to eyeball."""

    task: str
    correct: int
    total: int
    samples: tuple[tuple[str, str], ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def answer_items(
    loaded: LoadedModel, items: list[TaskItem], *, max_new_tokens: int = 4, batch_size: int = 8
) -> list[str]:
    """Greedy answers (special tokens stripped) for items, in order; the model is left as it was found."""
    model = loaded.model
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        with torch.no_grad():
            for chunk in _chunks(items, batch_size):
                inputs = loaded.build_inputs([it.prompt for it in chunk], [item_images(it) for it in chunk])
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
                answers.extend(loaded.decode(row) for row in out[:, inputs["input_ids"].shape[1] :])
    finally:
        model.train(was_training)
    return answers


def _chunks(items: list[TaskItem], batch_size: int) -> list[list[TaskItem]]:
    """Consecutive runs of at most ``batch_size`` items and about ``_VISUAL_TOKENS_PER_CALL`` visual tokens."""
    chunks: list[list[TaskItem]] = []
    tokens = 0
    for item in items:
        cost = visual_token_count(item)
        if not chunks or len(chunks[-1]) >= batch_size or tokens + cost > _VISUAL_TOKENS_PER_CALL:
            chunks.append([])
            tokens = 0
        chunks[-1].append(item)
        tokens += cost
    return chunks


def evaluate(
    loaded: LoadedModel,
    *,
    split: str = "validation",
    n_per_task: int = 16,
    tasks: Iterable[str] | None = None,
    task_options: Mapping[str, Mapping[str, object]] | None = None,
    max_new_tokens: int = 4,
    batch_size: int = 8,
) -> dict[str, TaskResult]:
    """Accuracy per task on items 0..n-1 (seed 0) of ``split``."""
    results = {}
    for task in TASKS if tasks is None else tuple(tasks):
        options = dict((task_options or {}).get(task, {}))
        items = generate_items(task, split, n_per_task, **options)
        preds = answer_items(loaded, items, max_new_tokens=max_new_tokens, batch_size=batch_size)
        correct = sum(score(p, it.answer) for p, it in zip(preds, items, strict=True))
        samples = tuple((p, it.answer) for p, it in list(zip(preds, items, strict=True))[:3])
        results[task] = TaskResult(task=task, correct=correct, total=len(items), samples=samples)
    return results

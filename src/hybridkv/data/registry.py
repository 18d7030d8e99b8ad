"""The task registry and the deterministic item generator.

An item is a pure function of (task, split, index, seed, options). Its content is drawn, then
redrawn, until the content key falls in the requested split; since the split of a content key does
not depend on the seed or the index, no content can ever appear in two splits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from .item import TaskItem
from .seeding import SPLITS, make_rng, split_of
from .spec import Meta, Rendered, TaskSpec
from .tasks import attribute, counting, grid, long_mixed, multi_image, text_copy, video

TASK_SPECS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            grid.SPEC,
            multi_image.SPEC,
            counting.SPEC,
            attribute.SPEC,
            text_copy.SPEC,
            video.SPEC,
            long_mixed.SPEC,
        )
    }
)
TASKS: tuple[str, ...] = tuple(TASK_SPECS)

# Acceptance is >= 10 % per draw (the smallest split), so failing this many draws means the
# options leave too little content for the split, not bad luck (0.9 ** 2000 ~ 1e-92).
_MAX_DRAWS = 2000


def get_spec(task: str) -> TaskSpec:
    """The spec of a task, or a ConfigError listing the known tasks."""
    try:
        return TASK_SPECS[task]
    except KeyError:
        raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}") from None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer")


def item_id(task: str, split: str, index: int, seed: int = 0) -> str:
    """Stable id, e.g. "grid/test/00042"; other seeds get their own namespace ("grid/test/s3/00042")."""
    prefix = f"{task}/{split}" if seed == 0 else f"{task}/{split}/s{seed}"
    return f"{prefix}/{index:05d}"


def sample_meta(task: str, split: str, index: int, *, seed: int = 0, **task_options: Any) -> Meta:
    """The content of one item, without rendering it (cheap)."""
    spec = get_spec(task)
    _check_split(split)
    _check_seed(seed)
    return _sample_in_split(spec, split, index, seed, spec.options(task_options))


def _sample_in_split(spec: TaskSpec, split: str, index: int, seed: int, options: Mapping[str, Any]) -> Meta:
    for draw in range(_MAX_DRAWS):
        meta = spec.sample(make_rng("item", spec.name, split, seed, index, draw), options)
        if split_of(spec.name, spec.content_key(meta)) == split:
            return meta
    raise ConfigError(
        f"task {spec.name!r}: no content for split {split!r} after {_MAX_DRAWS} draws; "
        "the options leave too little variety, enlarge the grid, lists or counts"
    )


def content_key(task: str, meta: Mapping[str, Any]) -> str:
    """What decides an item's split: its meta without layout-only fields, as canonical JSON."""
    return get_spec(task).content_key(meta)


def render(task: str, meta: Mapping[str, Any]) -> Rendered:
    """Prompt, answer and pixels of an item, from its meta alone."""
    return get_spec(task).render(meta)


def question_of(task: str, meta: Mapping[str, Any]) -> tuple[str, str]:
    """(prompt, answer) of an item from its meta, without drawing pixels where the task allows."""
    spec = get_spec(task)
    if spec.question is not None:
        return spec.question(meta)
    rendered = spec.render(meta)
    return rendered.prompt, rendered.answer


def answer_vocabulary(task: str, **task_options: Any) -> frozenset[str]:
    """Every answer the task can produce under these options."""
    spec = get_spec(task)
    return spec.vocabulary(spec.options(task_options))


def _build(spec: TaskSpec, split: str, index: int, seed: int, meta: Meta) -> TaskItem:
    rendered = spec.render(meta)
    return TaskItem(
        id=item_id(spec.name, split, index, seed),
        task=spec.name,
        split=split,
        prompt=rendered.prompt,
        answer=rendered.answer,
        images=rendered.images,
        video=rendered.video,
        meta=meta,
    )


def _iter_items(task: str, split: str, n: int, seed: int, task_options: Mapping[str, Any]) -> Iterator[TaskItem]:
    spec = get_spec(task)
    _check_split(split)
    _check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n={n!r} must be a non-negative integer")
    options = spec.options(task_options)
    for index in range(n):
        yield _build(spec, split, index, seed, _sample_in_split(spec, split, index, seed, options))


def generate_items(task: str, split: str, n: int, *, seed: int = 0, **task_options: Any) -> list[TaskItem]:
    """Items 0..n-1 of a task and split; the same arguments always give identical items."""
    return list(_iter_items(task, split, n, seed, task_options))


def iter_suite(split: str, n_per_task: int, *, tasks: Iterable[str] | None = None, seed: int = 0) -> Iterator[TaskItem]:
    """n_per_task items of each task with default options, task after task, rendered lazily."""
    chosen = TASKS if tasks is None else (tasks,) if isinstance(tasks, str) else tuple(tasks)
    for task in chosen:
        get_spec(task)
    for task in chosen:
        yield from _iter_items(task, split, n_per_task, seed, {})

"""What a task is: options, a sampler of content, a renderer of that content, and its vocabulary.

Splitting sampling (cheap, content only) from rendering (pixels) lets the generator reject-sample
content into its split without drawing anything, and lets anyone re-render an item from its meta.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError

Options = Mapping[str, Any]
Meta = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """The model-facing part of an item, derived from its meta alone."""

    prompt: str
    answer: str
    images: tuple[Image.Image, ...]
    video: tuple[Image.Image, ...] | None


@dataclass(frozen=True)
class TaskSpec:
    """A task of the suite.

    `key_exclude` names meta fields that only change the layout (resolution, pixel jitter, a
    distractor image), not what is asked: they are left out of the content key, so that two items
    that differ only there always fall in the same split.
    """

    name: str
    defaults: Mapping[str, Any]
    sample: Callable[[np.random.Generator, Options], Meta]
    render: Callable[[Mapping[str, Any]], Rendered]
    vocabulary: Callable[[Options], frozenset[str]]
    validate: Callable[[Options], None]
    key_exclude: frozenset[str] = field(default_factory=frozenset)
    question: Callable[[Mapping[str, Any]], tuple[str, str]] | None = None
    """(prompt, answer) of a meta without drawing its pixels (what ``render`` asks, cheaply)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by `given`, validated."""
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"task {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(sorted(self.defaults))}"
            )
        # numpy integers from a sweep become plain ints, so that the meta stays JSON.
        given = {k: int(v) if isinstance(v, np.integer) else v for k, v in given.items()}
        merged = {**self.defaults, **given}
        self.validate(merged)
        return merged

    def content_key(self, meta: Mapping[str, Any]) -> str:
        """Canonical JSON of the meta without its layout-only fields."""
        return json.dumps(_strip(meta, self.key_exclude), sort_keys=True, separators=(",", ":"))


def _strip(value: Any, drop: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list | tuple):
        return [_strip(v, drop) for v in value]
    return value


def require_int(task: str, options: Options, name: str, low: int, high: int) -> int:
    """The option as an int in [low, high], or a ConfigError that says which range is valid."""
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
        raise ConfigError(f"task {task!r}: option {name}={value!r} must be an integer in [{low}, {high}]")
    return int(value)


def require_range(task: str, options: Options, low_name: str, high_name: str, low: int, high: int) -> None:
    """Both bounds in [low, high] and in order."""
    lo = require_int(task, options, low_name, low, high)
    hi = require_int(task, options, high_name, low, high)
    if lo > hi:
        raise ConfigError(f"task {task!r}: option {low_name}={lo} exceeds {high_name}={hi}; swap them")


def require_choice(task: str, options: Options, name: str, allowed: tuple[str, ...]) -> str:
    """One name from `allowed`."""
    value = options[name]
    if value not in allowed:
        raise ConfigError(f"task {task!r}: option {name}={value!r} must be one of {', '.join(allowed)}")
    return str(value)


def require_probability(task: str, options: Options, name: str) -> float:
    """A float in [0, 1]."""
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"task {task!r}: option {name}={value!r} must be a number in [0, 1]")
    return float(value)


def require_choices(task: str, options: Options, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty collection of distinct names, all from `allowed`."""
    value = options[name]
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"task {task!r}: option {name} must be a list of names from {', '.join(allowed)}")
    chosen = tuple(value)
    bad = [v for v in chosen if v not in allowed]
    if not chosen or bad or len(set(chosen)) != len(chosen):
        raise ConfigError(
            f"task {task!r}: option {name}={list(chosen)!r} must be distinct names from {', '.join(allowed)}"
        )
    return chosen


def pick(rng: np.random.Generator, values: tuple[str, ...] | list[str]) -> str:
    """One value, uniformly; via an index so that the result is a plain str."""
    return values[int(rng.integers(len(values)))]


def pick_distinct(rng: np.random.Generator, values: tuple[str, ...] | list[str], k: int) -> list[str]:
    """k distinct values in random order."""
    order = rng.permutation(len(values))[:k]
    return [values[int(i)] for i in order]

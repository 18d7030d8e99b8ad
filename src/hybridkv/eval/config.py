"""What one evaluation run is, validated before any model work so that a typo costs no model load.

A run crosses methods with budgets over one fixed item set. The uncompressed reference (``full``) does
not depend on the budget, so it runs once; every other method runs at every budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..defaults import DEFAULT_MODEL
from ..errors import ConfigError

DEFAULT_METHODS: tuple[str, ...] = ("full", "hybridkv")
DEFAULT_BUDGETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)
DEFAULT_LIMIT = 20
DEFAULT_SPLIT = "test"
REFERENCE_METHOD = "full"
SETTINGS: tuple[str, ...] = ("aware", "agnostic")
"""``aware``: the question is part of the prompt the cache is compressed with. ``agnostic``: the images and
context are prefilled and compressed first, then the question is asked against the compressed cache
(:class:`hybridkv.Session`; the cut is :func:`hybridkv.data.split_question`)."""

Budget = float | int


@dataclass(frozen=True)
class RunSpec:
    """One (method, budget) cell of a run; ``budget`` is None for the budget-independent reference."""

    method: str
    budget: Budget | None

    @property
    def label(self) -> str:
        return self.method if self.budget is None else f"{self.method}@{format_budget(self.budget)}"


def format_budget(budget: Budget | None) -> str:
    """``0.1`` for a ratio, ``256 tok`` for tokens per KV head, ``-`` for none."""
    if budget is None:
        return "-"
    return f"{budget} tok" if isinstance(budget, int) else f"{budget:g}"


@dataclass(frozen=True)
class EvalConfig:
    """The resolved configuration of a run; it is recorded verbatim in ``results.json``.

    ``tasks`` empty means every task of the suite. ``limit`` is the number of items per task.
    ``max_new_tokens`` None means each task's own small default (answers are one word or number).
    ``method_options`` go to every compressed method (e.g. ``{"theta": 0.8}``); ``full`` ignores them.
    """

    model: str = DEFAULT_MODEL
    tasks: tuple[str, ...] = ()
    methods: tuple[str, ...] = DEFAULT_METHODS
    budgets: tuple[Budget, ...] = DEFAULT_BUDGETS
    limit: int = DEFAULT_LIMIT
    split: str = DEFAULT_SPLIT
    seed: int = 0
    max_new_tokens: int | None = None
    setting: str = "aware"
    method_options: Mapping[str, Any] = field(default_factory=dict)
    profile: str | None = None
    """A head profile file (``hybridkv profile``) given to every compressing method; sparsemm and
    hybridkv-profile need one."""

    def __post_init__(self) -> None:
        from .tasks import get_task, suite_tasks

        tasks = _unique(self.tasks) or suite_tasks()
        for task in tasks:
            get_task(task)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "methods", _check_methods(self.methods))
        object.__setattr__(self, "budgets", _check_budgets(self.budgets, self.methods))
        object.__setattr__(self, "method_options", MappingProxyType(dict(self.method_options)))
        _check_int("limit", self.limit, 1)
        _check_int("seed", self.seed, 0)
        if self.max_new_tokens is not None:
            _check_int("max_new_tokens", self.max_new_tokens, 1)
        _check_split(self.split)
        if self.setting not in SETTINGS:
            raise ConfigError(f"setting {self.setting!r} is not supported; choose one of: {', '.join(SETTINGS)}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("model must be a non-empty name, e.g. " + DEFAULT_MODEL)
        from ..profile import profile_path

        if self.profile is not None and not profile_path(self.profile).is_file():
            raise ConfigError(f"profile {self.profile} does not exist; write one with `hybridkv profile --out FILE`")
        self.build_methods()  # every method option and budget is checked here, not after the model loads

    def runs(self) -> tuple[RunSpec, ...]:
        """The reference once (if asked for), then every other method at every budget, in the given order."""
        specs: list[RunSpec] = []
        for method in self.methods:
            if method == REFERENCE_METHOD:
                specs.append(RunSpec(method, None))
            else:
                specs.extend(RunSpec(method, budget) for budget in self.budgets)
        return tuple(specs)

    def build_methods(self) -> dict[RunSpec, Any]:
        """A configured :class:`hybridkv.methods.Method` per run cell."""
        from ..methods import get_method

        shared = dict(self.method_options)
        if self.profile is not None:
            from ..profile import load_profile

            shared["profile"] = load_profile(self.profile)
        built = {}
        for spec in self.runs():
            options = {} if spec.budget is None else {**shared, "budget": spec.budget}
            try:
                built[spec] = get_method(spec.method, **options)
            except TypeError as exc:  # an option the method's config does not have
                raise ConfigError(f"method {spec.method!r} rejected its options: {exc}") from None
        return built

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as recorded in ``results.json``."""
        return {
            "model": self.model,
            "tasks": list(self.tasks),
            "methods": list(self.methods),
            "budgets": list(self.budgets),
            "limit": self.limit,
            "split": self.split,
            "seed": self.seed,
            "max_new_tokens": self.max_new_tokens,
            "setting": self.setting,
            "method_options": dict(self.method_options),
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalConfig:
        """Inverse of :meth:`to_dict` (re-validated)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown eval config key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(data)
        for key in ("tasks", "methods", "budgets"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _unique(values: Iterable[Any]) -> tuple[Any, ...]:
    """Values in first-seen order, without repeats."""
    if isinstance(values, str):
        values = (values,)
    return tuple(dict.fromkeys(values))


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")


def _check_split(split: str) -> None:
    from ..data import SPLITS

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


def _check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    from ..methods import METHODS

    chosen = _unique(methods)
    if not chosen:
        raise ConfigError(f"no method given; choose from: {', '.join(METHODS)}")
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(METHODS)}")
    return chosen


def _check_budgets(budgets: Sequence[Budget], methods: Sequence[str]) -> tuple[Budget, ...]:
    """Validated, deduplicated and sorted budgets, all ratios or all token counts (one x axis per plot)."""
    from ..config import validate_budget

    values = tuple(validate_budget(b) for b in _unique(budgets))
    if any(m != REFERENCE_METHOD for m in methods) and not values:
        raise ConfigError("no budget given; pass ratios such as 0.05,0.1 or token counts such as 64,256")
    if len({isinstance(b, int) for b in values}) > 1:
        raise ConfigError(
            f"budgets {', '.join(map(str, values))} mix ratios and token counts; run each kind separately"
        )
    return tuple(sorted(values))

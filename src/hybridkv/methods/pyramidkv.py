"""PyramidKV (arXiv 2406.02069): SnapKV selection with budgets that shrink with layer depth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class PyramidKV(HybridKV):
    """Lower layers keep more, upper layers less (linear schedule averaging to the budget)."""

    name: ClassVar[str] = "pyramidkv"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "static", "selector": "attention", "allocator": "pyramid"}

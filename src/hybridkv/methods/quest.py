"""Quest (arXiv 2406.10774): query-aware chunk retrieval for every head, full KV kept off the hot tier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class Quest(HybridKV):
    """Every head retrieves its top chunks by min/max key bounds at each step; budgets split evenly; chunks are
    Quest's pages, runs of consecutive positions; a share too small for one page attends
    sinks and window only."""

    name: ClassVar[str] = "quest"
    defaults: ClassVar[dict[str, Any]] = {
        "head_types": "dynamic",
        "allocator": "uniform",
        "chunk_shape": "sequence",
        "chunkless_core": False,
    }

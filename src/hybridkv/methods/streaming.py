"""StreamingLLM (arXiv 2309.17453): attention sinks plus the most recent tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class StreamingLLM(HybridKV):
    """Sinks + a recent window filling the budget; blind to content, the floor of what compression can do."""

    name: ClassVar[str] = "streaming"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "static", "selector": "recency", "allocator": "uniform"}

"""AdaKV (arXiv 2407.11550): SnapKV selection with per-head budgets adapted inside each layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class AdaKV(HybridKV):
    """Heads compete for the layer's budget through their window attention (20% safeguard each)."""

    name: ClassVar[str] = "adakv"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "static", "selector": "attention", "allocator": "adaptive"}

"""SnapKV (arXiv 2404.14469): keep the tokens the observation window attends to, pooled, every head alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class SnapKV(HybridKV):
    """Observation-window attention, max-pooled, picks each head's tokens; no modality prior."""

    name: ClassVar[str] = "snapkv"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "static", "selector": "attention", "allocator": "uniform"}

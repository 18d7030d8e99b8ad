"""The paper's allocation ablations (its Table 5), each HybridKV with one level of the budget split removed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class HybridKVNoHeadAlloc(HybridKV):
    """Ablation: type-level split only; heads within a type share alike ("w/o H")."""

    name: ClassVar[str] = "hybridkv-no-head-alloc"
    defaults: ClassVar[dict[str, Any]] = {"allocator": "type-level"}


@dataclass(init=False)
class HybridKVUniform(HybridKV):
    """Ablation: neither the type nor the head level; every head the same budget ("w/o H & HT")."""

    name: ClassVar[str] = "hybridkv-uniform"
    defaults: ClassVar[dict[str, Any]] = {"allocator": "uniform"}

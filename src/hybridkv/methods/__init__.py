"""Compression methods, one small file each, resolved by exact name through one registry."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .ablations import HybridKVNoHeadAlloc, HybridKVUniform
from .adakv import AdaKV
from .base import Method
from .fastv import FastV
from .full import FullCache
from .h2o import H2O
from .hybridkv import HybridKV, RetrievalOnly, TextPriorOnly
from .look_m import LookM
from .madakv import MadaKV
from .profiled import HybridKVAdaptive, HybridKVProfile
from .pyramidkv import PyramidKV
from .quest import Quest
from .snapkv import SnapKV
from .sparsemm import SparseMM
from .streaming import StreamingLLM

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (
        FullCache,
        HybridKV,
        TextPriorOnly,
        RetrievalOnly,
        HybridKVNoHeadAlloc,
        HybridKVUniform,
        HybridKVProfile,
        HybridKVAdaptive,
        StreamingLLM,
        SnapKV,
        PyramidKV,
        AdaKV,
        Quest,
        H2O,
        FastV,
        LookM,
        MadaKV,
        SparseMM,
    )
}


def get_method(name: str, **options: Any) -> Method:
    """Build a method by registry name; ``full`` ignores compression options."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    cls = METHODS[name]
    return cls() if cls is FullCache else cls(**options)


__all__ = [
    "H2O",
    "METHODS",
    "AdaKV",
    "FastV",
    "FullCache",
    "HybridKV",
    "HybridKVAdaptive",
    "HybridKVNoHeadAlloc",
    "HybridKVProfile",
    "HybridKVUniform",
    "LookM",
    "MadaKV",
    "Method",
    "PyramidKV",
    "Quest",
    "RetrievalOnly",
    "SnapKV",
    "SparseMM",
    "StreamingLLM",
    "TextPriorOnly",
    "get_method",
]

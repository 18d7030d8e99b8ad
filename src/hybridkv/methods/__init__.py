"""Compression methods, one small file each, resolved by exact name through one registry."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .ablations import HybridKVNoHeadAlloc, HybridKVUniform
from .adakv import AdaKV
from .base import Method
from .full import FullCache
from .hybridkv import HybridKV, RetrievalOnly, TextPriorOnly
from .pyramidkv import PyramidKV
from .quest import Quest
from .snapkv import SnapKV
from .streaming import StreamingLLM

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (
        FullCache, HybridKV, TextPriorOnly, RetrievalOnly, HybridKVNoHeadAlloc, HybridKVUniform,
        StreamingLLM, SnapKV, PyramidKV, AdaKV, Quest,
    )
}


def get_method(name: str, **options: Any) -> Method:
    """Build a method by registry name; ``full`` ignores compression options."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    cls = METHODS[name]
    return cls() if cls is FullCache else cls(**options)


__all__ = [
    "METHODS", "AdaKV", "FullCache", "HybridKV", "HybridKVNoHeadAlloc", "HybridKVUniform", "Method", "PyramidKV",
    "Quest", "RetrievalOnly", "SnapKV", "StreamingLLM", "TextPriorOnly", "get_method",
]

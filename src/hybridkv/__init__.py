"""hybridkv: hybrid KV cache compression for multimodal LLMs.

Public names are imported lazily, so ``hybridkv --help`` and input errors answer without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "HybridKV": "hybridkv.methods",
    "FullCache": "hybridkv.methods",
    "TextPriorOnly": "hybridkv.methods",
    "RetrievalOnly": "hybridkv.methods",
    "METHODS": "hybridkv.methods",
    "get_method": "hybridkv.methods",
    "HybridKVConfig": "hybridkv.config",
    "HybridCache": "hybridkv.cache",
    "CacheStats": "hybridkv.cache",
    "generate": "hybridkv.generation",
    "Session": "hybridkv.session",
    "load_model": "hybridkv.models",
    "load_image": "hybridkv.models",
    "tiny_random_model": "hybridkv.models",
    "TokenType": "hybridkv.token_types",
    "HeadProfile": "hybridkv.profile",
    "load_profile": "hybridkv.profile",
    "save_profile": "hybridkv.profile",
    "profile_model": "hybridkv.profiling",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hybridkv' has no attribute {name!r}")

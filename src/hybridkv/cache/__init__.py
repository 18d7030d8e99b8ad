"""The cache: per-layer compressed storage, chunk store and tiers, and its measured stats."""

from .hybrid_cache import HybridCache
from .layer import HybridLayer, Phase
from .stats import CacheStats, storage_bytes

__all__ = ["CacheStats", "HybridCache", "HybridLayer", "Phase", "storage_bytes"]

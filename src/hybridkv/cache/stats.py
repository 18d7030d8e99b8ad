"""Measured figures of a cache: bytes per tier from tensor storage, head decisions, retrieval counters."""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch


def storage_bytes(tensors: Iterable[torch.Tensor | None]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a view of a big buffer counts the whole buffer)."""
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if t is None:
            continue
        st = t.untyped_storage()
        key = st.data_ptr()
        if key in seen or st.nbytes() == 0:
            continue
        seen.add(key)
        total += st.nbytes()
    return total


@dataclass
class LayerHeads:
    """Per-layer decisions, each a nested list [batch][kv_head]."""

    scores: list[list[float]]
    static: list[list[bool]]
    budget: list[list[int]]
    hot_tokens: list[list[int]]  # tokens resident and attended per step (sinks + window + selected chunks)
    cold_tokens: list[list[int]]  # tokens kept only in the cold tier


@dataclass
class CacheStats:
    """What ``HybridCache.stats()`` returns; ``to_dict()`` is JSON-ready."""

    hot_bytes: int
    cold_bytes: int
    full_kv_bytes: int
    prompt_tokens: list[int]
    generated_tokens: int
    heads: list[LayerHeads]
    steps: int
    chunks_fetched_per_step: list[int]
    chunk_hits_per_step: list[int]
    time_s: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)
    """The options the cache was built with."""
    fitted: dict[str, int] = field(default_factory=dict)
    """The recent window and chunk size the last prompt could afford (``fit_short_prompts``)."""

    @property
    def hit_rate(self) -> float:
        total = sum(self.chunks_fetched_per_step) + sum(self.chunk_hits_per_step)
        return sum(self.chunk_hits_per_step) / total if total else 1.0

    @property
    def hot_ratio(self) -> float:
        return self.hot_bytes / self.full_kv_bytes if self.full_kv_bytes else 0.0

    @property
    def static_fraction(self) -> float:
        flags = [s for layer in self.heads for row in layer.static for s in row]
        return sum(flags) / len(flags) if flags else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "kv_bytes": {"hot": self.hot_bytes, "cold": self.cold_bytes},
            "full_kv_bytes": self.full_kv_bytes,
            "hot_ratio": round(self.hot_ratio, 4),
            "static_fraction": round(self.static_fraction, 4),
            "chunk_hit_rate": round(self.hit_rate, 4),
            "steps": self.steps,
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(self.summary())
        return out


class StatsRecorder:
    """Counters a cache accumulates while it runs (time per phase, retrieval per step)."""

    def __init__(self) -> None:
        self.time_s: dict[str, float] = {}
        self.fetched: list[int] = []
        self.hits: list[int] = []

    @contextmanager
    def timed(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.time_s[phase] = self.time_s.get(phase, 0.0) + time.perf_counter() - t0

    def record_fetch(self, step: int, hits: int, misses: int) -> None:
        while len(self.fetched) <= step:
            self.fetched.append(0)
            self.hits.append(0)
        self.fetched[step] += misses
        self.hits[step] += hits

"""HybridKV (arXiv 2604.05887): static heads pruned text-first, dynamic heads served by chunk retrieval."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from transformers import PreTrainedModel

from ..attention import attached
from ..cache import HybridCache
from ..config import HybridKVConfig
from .base import Method


@dataclass
class HybridKV(Method):
    """Per-input head classification at prefill, then a different compression per head type.

    Every field of ``HybridKVConfig`` is accepted as a keyword (budget, theta, score, window, sinks,
    chunk_size, cold_tier, ...); the config validates them on construction.
    """

    name: ClassVar[str] = "hybridkv"
    defaults: ClassVar[dict[str, Any]] = {}
    """Options a subclass fixes (the defining traits of a baseline or ablation); explicit options win."""
    config: HybridKVConfig = field(default_factory=HybridKVConfig)

    def __init__(self, config: HybridKVConfig | None = None, **options: Any) -> None:
        self.config = config if config is not None else HybridKVConfig(**{**self.defaults, **options})

    def make_cache(self, model: PreTrainedModel, inputs: Mapping[str, torch.Tensor] | None = None) -> HybridCache:
        from ..models import get_adapter

        adapter = get_adapter(model)
        if self.config.profile is not None:
            self.config.profile.check_model(model)  # a profile of another model fails before any work
        text_config = adapter.text_config(model.config)
        token_types = adapter.token_types(inputs, model.config) if inputs is not None else None
        tiles = inputs is not None and self.config.chunk_shape == "tiles"  # only tiles read the layout
        layout = adapter.visual_layout(inputs, model.config) if tiles else None
        return HybridCache(text_config.num_hidden_layers, self.config, token_types, layout)

    @contextmanager
    def __call__(self, model: PreTrainedModel) -> Iterator[PreTrainedModel]:
        from ..models import get_adapter

        with attached(model, get_adapter(model)):
            yield model

    def describe(self) -> dict[str, Any]:
        cfg = self.config.to_dict()
        cfg.pop("extra", None)
        return {"method": self.name, **cfg}


@dataclass(init=False)
class TextPriorOnly(HybridKV):
    """Ablation: every head static (text-prior pruning everywhere)."""

    name: ClassVar[str] = "text-prior-only"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "static"}


@dataclass(init=False)
class RetrievalOnly(HybridKV):
    """Ablation: every head dynamic (chunk retrieval everywhere, Quest-like)."""

    name: ClassVar[str] = "retrieval-only"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "dynamic"}

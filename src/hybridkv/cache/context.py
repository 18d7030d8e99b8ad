"""What every layer of one HybridCache shares during a prefill and afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..budget import fit_short_layout, prompt_tokens_budget
from ..config import HybridKVConfig
from .stats import StatsRecorder
from .tiers import DiskTier, HostTier


@dataclass
class CacheContext:
    """What every layer of one cache shares: the config, the prompt's token types, tier and counters."""

    config: HybridKVConfig
    token_types: torch.Tensor | None
    layout: torch.Tensor | None
    """[B, L, 3]: (image, row, column) of each visual token, -1 for text (``ModelAdapter.visual_layout``);
    None when the prompt's image grids are not known (chunks are then runs of positions)."""
    tier: HostTier | DiskTier
    recorder: StatsRecorder
    num_layers: int = 1
    step: int = 0
    prefill: dict[str, Any] = field(default_factory=dict)
    """What one prefill hands from layer to layer (FastV's ranking, MadaKV's carried budget); layer 0
    starts it afresh and the last layer clears it, so nothing of it outlives the prefill."""
    park_prompt: bool = False
    """True in a session whose config selects at question time: layers park the prompt at prefill
    (``HybridCache.select_at_question``)."""
    requested: HybridKVConfig | None = None
    """The config the cache was built with; ``config`` is it fitted to the current prompt (``fit_to_prompt``)."""

    def __post_init__(self) -> None:
        if self.requested is None:
            self.requested = self.config

    def fit_to_prompt(self, prompt_len: int) -> HybridKVConfig:
        """Set ``config`` to the requested one with the sinks, recent window and chunk size a prompt of ``prompt_len``
        tokens can afford (``HybridKVConfig.fit_short_prompts``); called by the first layer at each prefill,
        with the shortest real prompt of the batch, so every layer and row shares one layout."""
        cfg = self.requested
        if cfg.fit_short_prompts:
            head_budget = prompt_tokens_budget(cfg.budget, prompt_len, floor=0)
            fit = fit_short_layout(
                head_budget,
                sinks=cfg.sinks,
                window=cfg.kept_window,
                chunk_size=cfg.chunk_size,
                window_yields=cfg.short_window_yields,
            )
            if fit != (cfg.sinks, cfg.kept_window, cfg.chunk_size):
                cfg = replace(cfg, sinks=fit.sinks, recent_window=fit.window, chunk_size=fit.chunk_size)
        self.config = cfg
        return cfg

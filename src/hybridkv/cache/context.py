"""What every layer of one HybridCache shares during a prefill and afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

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

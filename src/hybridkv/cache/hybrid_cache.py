"""HybridCache: a transformers ``Cache`` whose layers compress themselves after prefill."""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

from ..config import HybridKVConfig
from ..errors import CacheStateError
from .context import CacheContext
from .layer import HybridLayer, Phase
from .stats import CacheStats, StatsRecorder, storage_bytes
from .tiers import make_tier


class HybridCache(Cache):
    """Pass as ``model.generate(..., past_key_values=cache)`` on a model running the hybridkv attention.

    One cache serves one batch of prompts: ``token_types`` ([B, L], see ``TokenType``) tells text from
    visual positions for text-prior pruning; without it every position counts as text. ``layout``
    ([B, L, 3], see ``ModelAdapter.visual_layout``) places visual tokens in their image's grid, so that
    dynamic heads' chunks can be image tiles (``HybridKVConfig.chunk_shape``).
    """

    def __init__(
        self,
        num_layers: int,
        config: HybridKVConfig,
        token_types: torch.Tensor | None = None,
        layout: torch.Tensor | None = None,
    ) -> None:
        self.config = config
        self.ctx = CacheContext(
            config=config,
            token_types=None if token_types is None else token_types.detach().long(),
            layout=None if layout is None else layout.detach().long(),
            tier=make_tier(config.cold_tier, config.cold_dir),
            recorder=StatsRecorder(),
            num_layers=num_layers,
        )
        super().__init__(layers=[HybridLayer(i, self.ctx) for i in range(num_layers)])

    def select_at_question(self) -> bool:
        """Called by a session before its context's prefill: where the config selects at question time
        (``HybridKVConfig.select_at``), the context is parked whole until each question arrives. Returns
        whether it will be."""
        if self.layers[0].phase is not Phase.EMPTY:
            raise CacheStateError("select_at_question() must come before the prefill; call it on a new cache")
        self.ctx.park_prompt = self.config.select_at == "question"
        return self.ctx.park_prompt

    def reset(self) -> None:
        """Forget everything, so the cache can take a new prompt (re-prefill)."""
        for layer in self.layers:
            layer.reset()
        self.ctx.step = 0
        self.ctx.recorder = StatsRecorder()

    def hot_bytes(self) -> int:
        """Every layer's resident tensors, plus the prompt's token-type map and layout the cache holds."""
        return sum(layer.hot_bytes() for layer in self.layers) + storage_bytes([self.ctx.token_types, self.ctx.layout])

    def cold_bytes(self) -> int:
        return sum(layer.cold_bytes() for layer in self.layers)

    def stats(self) -> CacheStats:
        """Measured figures: bytes from tensor storage, head decisions per layer, retrieval per step."""
        first = self.layers[0]
        rec = self.ctx.recorder
        return CacheStats(
            hot_bytes=self.hot_bytes(),
            cold_bytes=self.cold_bytes(),
            full_kv_bytes=sum(layer.full_bytes() for layer in self.layers),
            prompt_tokens=list(first.row_lengths),
            generated_tokens=max(first.logical_len - first.prompt_len, 0),
            heads=[layer.heads for layer in self.layers if layer.heads is not None],
            steps=self.ctx.step,
            chunks_fetched_per_step=list(rec.fetched),
            chunk_hits_per_step=list(rec.hits),
            time_s={k: round(v, 6) for k, v in rec.time_s.items()},
            config=self.config.to_dict(),
            fitted={
                "sinks": self.ctx.config.sinks,
                "recent_window": self.ctx.config.kept_window,
                "chunk_size": self.ctx.config.chunk_size,
            },
        )

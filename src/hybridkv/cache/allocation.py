"""How many tokens each KV head of one layer keeps: the allocators, read at the layer that compresses.

The pure budget arithmetic lives in :mod:`hybridkv.budget`; this module feeds it what one layer knows at
prefill (its head scores and types, the prompt lengths, the window's attention) and what earlier layers
left in the prefill state (FastV's ranking, MadaKV's carried budget).
"""

from __future__ import annotations

import torch

from ..budget import (
    allocate_layer,
    fastv_layer_budgets,
    input_adaptive_factor,
    modality_allocation,
    profile_head_budgets,
    profile_layer_scales,
    prompt_tokens_budget,
    pyramid_layer_budgets,
)
from ..errors import CacheStateError
from ..token_types import TokenType
from .context import CacheContext
from .prefill import modality_preference, protected_positions


def layer_budgets(
    ctx: CacheContext,
    layer_idx: int,
    static: torch.Tensor,
    scores: torch.Tensor,
    lengths: list[int],
    importance: torch.Tensor,
    key_valid: torch.Tensor,
    types: torch.Tensor,
    window_probs: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """Per-head budgets [B, H_kv] of this layer, and for ``modality`` the (text, visual) tokens per head."""
    cfg = ctx.config
    floor = cfg.sinks + cfg.kept_window
    b, hkv = static.shape
    device = importance.device
    if cfg.allocator in ("fastv", "profile"):  # budgets set for the whole model, read at this layer
        rows = []
        for n in lengths:
            per_head = prompt_tokens_budget(cfg.budget, n, floor=floor)
            if cfg.allocator == "fastv":
                layers = fastv_layer_budgets(per_head, n, ctx.num_layers, cfg.fastv_layer, floor=floor)
                rows.append([layers[layer_idx]] * hkv)
            else:
                table = profile_head_budgets(
                    per_head, n, cfg.profile.visual_mass.tolist(), floor=floor, uniform_share=cfg.uniform_share
                )
                rows.append(table[layer_idx])
        return torch.tensor(rows, dtype=torch.long, device=device), None
    scale = _layer_level_scales(ctx, layer_idx, 1.0, scores)
    real_first = None
    if cfg.allocator == "adaptive":  # each row's real tokens first, as the allocator expects
        order = torch.argsort((~key_valid).to(torch.int8), dim=-1, stable=True)
        real_first = importance.gather(-1, order[:, None, :].expand_as(importance)).cpu()
    kw = dict(floor=floor, sinks=cfg.sinks, window=cfg.kept_window, chunk_size=cfg.chunk_size, r=cfg.r)
    if cfg.allocator == "pyramid":  # the layer's share of the whole model's budget, one row at a time
        scales = [scale] * len(lengths) if isinstance(scale, float) else scale
        budgets = torch.cat(
            [
                allocate_layer(
                    "pyramid",
                    pyramid_layer_budgets(
                        prompt_tokens_budget(cfg.budget, n, floor=floor), n, ctx.num_layers, floor=floor
                    )[layer_idx],
                    static[row : row + 1].cpu(),
                    scores[row : row + 1].cpu(),
                    [n],
                    layer_scale=scales[row],
                    **kw,
                )
                for row, n in enumerate(lengths)
            ]
        )
    else:
        budgets = allocate_layer(
            cfg.allocator,
            cfg.budget,
            static.cpu(),
            scores.cpu(),
            lengths,
            layer_scale=scale,
            importance=real_first,
            **kw,
        )
    if cfg.allocator != "modality":
        return budgets.to(device), None
    return _modality_split(ctx, layer_idx, budgets, lengths, key_valid, types, window_probs)


def _layer_level_scales(ctx: CacheContext, layer_idx: int, scale: float, scores: torch.Tensor) -> float | list[float]:
    """The model -> layer level (``layer_level``): this layer's share from the profile, per input if adaptive."""
    cfg = ctx.config
    if cfg.layer_level == "none":
        return scale
    per_layer = cfg.profile.score_mean.float().mean(dim=1).tolist()  # mean head concentration per layer
    scale *= profile_layer_scales(per_layer)[layer_idx]
    if cfg.layer_level == "profile":
        return scale
    reference = per_layer[layer_idx]
    return [scale * input_adaptive_factor(c, reference) for c in scores.float().mean(dim=1).tolist()]


def _modality_split(
    ctx: CacheContext,
    layer_idx: int,
    base: torch.Tensor,
    lengths: list[int],
    key_valid: torch.Tensor,
    types: torch.Tensor,
    window_probs: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """MadaKV: each head's spare split by its modality preference; what it cannot use is carried on."""
    cfg = ctx.config
    prot = protected_positions(key_valid, sinks=cfg.sinks, window=cfg.kept_window)
    candidates = key_valid & ~prot
    is_text = types == TokenType.TEXT
    n_text = (candidates & is_text).sum(-1).tolist()
    n_visual = (candidates & ~is_text).sum(-1).tolist()
    n_prot = prot.sum(-1).tolist()
    share = modality_preference(window_probs, types, candidates).tolist()
    carry = ctx.prefill.setdefault("modality_carry", [0] * base.shape[0])
    later = ctx.num_layers - 1 - layer_idx  # later layers start from the same (uniform) base
    text_rows, visual_rows = [], []
    for row, n in enumerate(lengths):
        row_base = base[row].tolist()
        text, visual, carry[row] = modality_allocation(
            row_base,
            carry[row],
            share[row],
            n_text=n_text[row],
            n_visual=n_visual[row],
            protected=n_prot[row],
            prompt_len=n,
            future_capacity=later * sum(max(n - x, 0) for x in row_base),
        )
        text_rows.append(text)
        visual_rows.append(visual)
    device = key_valid.device
    text_t = torch.tensor(text_rows, dtype=torch.long, device=device)
    visual_t = torch.tensor(visual_rows, dtype=torch.long, device=device)
    budgets = torch.tensor(n_prot, dtype=torch.long, device=device)[:, None] + text_t + visual_t
    return budgets, (text_t, visual_t)


def fastv_ranking(ctx: CacheContext, layer_idx: int, importance: torch.Tensor) -> torch.Tensor:
    """FastV: layer K-1 ranks the tokens once (mean over its heads); every later layer and head uses it."""
    k = ctx.config.fastv_layer
    if layer_idx == k - 1:
        ctx.prefill["fastv_ranking"] = importance.mean(1)
    if layer_idx < k:
        return importance
    ranking = ctx.prefill.get("fastv_ranking")
    if ranking is None:
        raise CacheStateError(
            f"layer {layer_idx}: FastV's ranking from layer {k - 1} is missing; prefill the prompt in one "
            "forward pass through every layer"
        )
    return ranking[:, None, :].expand_as(importance)

"""KV budgets as pure functions: how many tokens each KV head may keep, and how a dynamic head spends them.

Tested without a model. Every budget is clamped: never below the sink + window floor (so a head never
loses its anchors, as silently emptied heads are a known failure of other compressors), never above
the prompt itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .config import validate_budget


def prompt_tokens_budget(budget: float | int, prompt_len: int, *, floor: int) -> int:
    """Tokens one KV head keeps for a prompt of ``prompt_len`` tokens.

    A ratio is rounded up (a 10% budget of 5 tokens keeps 1, not 0); the result is clamped to
    ``[min(floor, prompt_len), prompt_len]``.
    """
    validate_budget(budget)
    if prompt_len <= 0:
        return 0
    if isinstance(budget, float):
        tokens = math.ceil(budget * prompt_len - 1e-9)
    else:
        tokens = budget
    return max(min(floor, prompt_len), min(tokens, prompt_len))


@dataclass(frozen=True)
class DynamicLayout:
    """How a dynamic head of one prompt splits into always-resident tokens and retrievable chunks.

    The prompt is ``sinks`` tokens, then ``middle`` tokens cut into ``n_chunks`` chunks of
    ``chunk_size`` (the last one may be partial), then the recent ``window``.
    """

    sinks: int
    middle: int
    n_chunks: int
    chunk_size: int
    window: int
    n_select: int  # chunks attended per decode step

    @property
    def resident_tokens(self) -> int:
        return self.sinks + self.window

    @property
    def attended_tokens(self) -> int:
        """Upper bound of tokens attended per step (exact unless the partial chunk is among those picked)."""
        return self.resident_tokens + min(self.n_select * self.chunk_size, self.middle)


def dynamic_layout(prompt_len: int, budget_tokens: int, *, sinks: int, window: int, chunk_size: int) -> DynamicLayout:
    """Split a dynamic head's prompt so that sinks + window + selected chunks never exceed its budget."""
    sinks = min(sinks, prompt_len)
    window = min(window, prompt_len - sinks)
    middle = prompt_len - sinks - window
    n_chunks = -(-middle // chunk_size)
    spare = budget_tokens - sinks - window
    n_select = n_chunks if spare >= middle else max(0, min(n_chunks, spare // chunk_size))
    return DynamicLayout(
        sinks=sinks, middle=middle, n_chunks=n_chunks, chunk_size=chunk_size, window=window, n_select=n_select
    )


def _largest_remainder(shares: list[float], total: int, caps: list[int]) -> list[int]:
    """Integers within [0, caps] summing to min(total, sum(caps)), as close to ``shares`` as possible."""
    base = [min(int(math.floor(s)), c) for s, c in zip(shares, caps, strict=True)]
    left = min(total, sum(caps)) - sum(base)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - math.floor(shares[i])), i))
    while left > 0:
        moved = False
        for i in order:
            if left and base[i] < caps[i]:
                base[i] += 1
                left -= 1
                moved = True
        if not moved:
            break
    return base


def proportional_split(total: int, weights: list[float], caps: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` with per-item caps (water-filling), integers, exact sum."""
    n = len(weights)
    if n == 0 or total <= 0:
        return [0] * n
    shares = [0.0] * n
    free = [i for i in range(n) if caps[i] > 0]
    remaining = float(min(total, sum(caps)))
    while free and remaining > 1e-9:
        w = [max(weights[i], 1e-12) for i in free]
        scale = remaining / sum(w)
        capped = [i for i, wi in zip(free, w, strict=True) if shares[i] + wi * scale >= caps[i]]
        if not capped:
            for i, wi in zip(free, w, strict=True):
                shares[i] += wi * scale
            break
        for i in capped:
            remaining -= caps[i] - shares[i]
            shares[i] = float(caps[i])
        free = [i for i in free if i not in capped]
    return _largest_remainder(shares, total, caps)


def two_level_allocation(
    total: int,
    static: list[bool],
    scores: list[float],
    prompt_len: int,
    *,
    floor: int,
    sinks: int,
    window: int,
    chunk_size: int,
    r: float = 1.0,
    by_score: bool = True,
    **_: object,
) -> list[int]:
    """HybridKV's top-down split for one layer and prompt: head type first, then each head.

    Every head first gets the floor. The spare is split between the types so that a dynamic head
    weighs ``r`` static heads (``r = 1``: an even split across types). Dynamic heads share theirs
    evenly and are rounded down to whole chunks; what rounding frees goes to the static heads, which
    share their pool in proportion to their text-centric score (more concentrated, more kept), each
    capped at the prompt (evenly when ``by_score`` is False: the paper's "without head-level
    allocation" ablation). Integers; the sum is exactly ``total`` whenever the prompt can hold it.
    """
    n = len(static)
    floor = min(floor, prompt_len)
    total = min(total, n * prompt_len)
    out = [floor] * n
    spare = total - n * floor
    if n == 0 or spare <= 0:
        return out
    dyn = [i for i in range(n) if not static[i]]
    sta = [i for i in range(n) if static[i]]
    dyn_pool = spare if not sta else round(spare * r * len(dyn) / (len(sta) + r * len(dyn)))
    if dyn:
        each = floor + dyn_pool // len(dyn)
        lay = dynamic_layout(prompt_len, min(each, prompt_len), sinks=sinks, window=window, chunk_size=chunk_size)
        attended = lay.attended_tokens if sta else min(each, prompt_len)
        for i in dyn:
            out[i] = attended
    static_pool = total - sum(out)
    if sta:
        weights = [scores[i] for i in sta] if by_score else [1.0] * len(sta)
        extra = proportional_split(static_pool, weights, [prompt_len - floor] * len(sta))
        for i, e in zip(sta, extra, strict=True):
            out[i] += e
    if dyn and sum(out) < total:  # static heads are full: return the rest to the dynamic heads
        extra = proportional_split(total - sum(out), [1.0] * len(dyn), [prompt_len - out[i] for i in dyn])
        for i, e in zip(dyn, extra, strict=True):
            out[i] += e
    return out


def uniform_allocation(total: int, static: list[bool], scores: list[float], prompt_len: int, **_: object) -> list[int]:
    """Every head the same share (the ``hybridkv-uniform`` ablation and the classic baselines)."""
    n = len(static)
    return proportional_split(min(total, n * prompt_len), [1.0] * n, [prompt_len] * n)


def adaptive_allocation(
    total: int,
    static: list[bool],
    scores: list[float],
    prompt_len: int,
    *,
    floor: int,
    importance: torch.Tensor | None = None,
    safeguard: float = 0.2,
    **_: object,
) -> list[int]:
    """AdaKV-style: the heads compete for the layer's budget through their window attention.

    Each head first gets ``safeguard`` of an even share (at least the floor); the rest goes to the
    heads owning the top-scored (head, token) pairs of ``importance`` [H, L] across the whole layer,
    so a head whose attention is concentrated on a few tokens gives budget to one that is spread out.
    """
    n = len(static)
    total = min(total, n * prompt_len)
    if importance is None:
        return uniform_allocation(total, static, scores, prompt_len)
    base = min(prompt_len, max(min(floor, prompt_len), int(safeguard * total / max(n, 1))))
    out = [base] * n
    spare = total - base * n
    if spare > 0:
        flat = importance[:, :prompt_len].reshape(-1).float()
        top = flat.topk(min(spare + base * n, flat.numel())).indices // prompt_len
        counts = torch.bincount(top, minlength=n).tolist()  # tokens each head would keep by itself
        extra = proportional_split(spare, [max(c - base, 0) + 1e-6 for c in counts], [prompt_len - base] * n)
        out = [o + e for o, e in zip(out, extra, strict=True)]
    return out


def type_level_allocation(total: int, static: list[bool], scores: list[float], prompt_len: int, **kw: Any) -> list[int]:
    """The type level of HybridKV alone: static and dynamic pools as usual, heads within a type alike."""
    return two_level_allocation(total, static, scores, prompt_len, **{**kw, "by_score": False})


ALLOCATORS = {
    "uniform": uniform_allocation,
    "hybridkv": two_level_allocation,
    "type-level": type_level_allocation,
    "pyramid": uniform_allocation,
    "adaptive": adaptive_allocation,
}
"""Head-level split per allocator; ``pyramid`` is uniform within a layer but scales layers (see below)."""


def pyramid_scale(layer_idx: int, num_layers: int, beta: float = 20.0) -> float:
    """PyramidKV's layer schedule: budgets fall linearly with depth and average to 1 over the layers.

    The last layer gets ``1 / beta`` of the mean budget and the first ``2 - 1 / beta``: lower layers
    attend broadly, upper layers concentrate on few tokens.
    """
    if num_layers <= 1:
        return 1.0
    last = 1.0 / beta
    first = 2.0 - last
    return first - (first - last) * layer_idx / (num_layers - 1)


def allocate_layer(
    name: str,
    budget: float | int,
    static: torch.Tensor,
    scores: torch.Tensor,
    lengths: list[int],
    *,
    floor: int,
    sinks: int,
    window: int,
    chunk_size: int,
    r: float,
    layer_scale: float = 1.0,
    importance: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-head budgets [B, H_kv] for one layer: each row's total is its per-head budget times H_kv.

    ``layer_scale`` multiplies the per-head budget of this layer (a layer schedule such as
    ``pyramid_scale``) before the floor and the prompt length clamp it. A budget that covers the
    whole prompt is never scaled: budget 1.0 means no compression under every allocator.
    ``importance`` [B, H_kv, L'] (each row's real tokens first) feeds the ``adaptive`` allocator.
    """
    fn = ALLOCATORS[name]
    rows = []
    n_heads = static.shape[1]
    for b, length in enumerate(lengths):
        raw = budget * length if isinstance(budget, float) else float(budget)
        scaled = max(1, math.ceil(raw * layer_scale - 1e-9)) if raw < length else length
        total = n_heads * prompt_tokens_budget(scaled, length, floor=floor)
        row_importance = None if importance is None else importance[b]
        rows.append(
            fn(total, static[b].tolist(), scores[b].tolist(), length, floor=floor, sinks=sinks, window=window,
               chunk_size=chunk_size, r=r, importance=row_importance)
        )
    return torch.tensor(rows, dtype=torch.long)

"""KV budgets as pure functions: how many tokens each KV head may keep, and how a dynamic head spends them.

Tested without a model. Every budget is clamped: never below the sink + window floor (so a head never
loses its anchors, as silently emptied heads are a known failure of other compressors), never above
the prompt itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .config import validate_budget
from .errors import BudgetError


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


# On a short prompt, at most this share of a head's budget goes to the recent window it keeps, and at most
# this share to the attention sinks (each at least one token, where any is configured).
WINDOW_SHARE = 0.25
SINK_SHARE = 0.25
# A dynamic head should be able to pick at least this many chunks, where its budget allows.
MIN_SELECTED_CHUNKS = 4
# Chunks never shrink below this many tokens: each keeps two key vectors of summary in the hot tier, so a
# smaller chunk buys attended tokens with hot memory. Measured on the embedded suite: 2-token chunks gave the
# same accuracy at the same hot bytes as 4-token chunks at twice the budget (docs/methods.md).
MIN_CHUNK_TOKENS = 4


class FittedLayout(NamedTuple):
    """The sinks, recent window and chunk size one prompt's head budget affords (``fit_short_layout``)."""

    sinks: int
    window: int
    chunk_size: int


def fit_short_layout(
    head_budget: int, *, sinks: int, window: int, chunk_size: int, window_yields: bool = True
) -> FittedLayout:
    """The (sinks, window, chunk size) a head budget of ``head_budget`` tokens can afford.

    Why: with the paper-sized window (16) and chunks (16), a 10% budget of a 260-token prompt (26 tokens)
    is all sinks and window, so a dynamic head retrieves nothing and every method degenerates into
    StreamingLLM. The window and the sinks therefore take at most ``WINDOW_SHARE`` and ``SINK_SHARE`` of the
    budget (at least one token each, where any is configured), and chunks shrink to the largest power of two of which
    ``MIN_SELECTED_CHUNKS`` fit beside them (never below ``MIN_CHUNK_TOKENS``; a power of two keeps the runs
    aligned with the configured 16-token ones: 15-token chunks lost 3 of 8 many-image items at 2% where
    8-token chunks lost 1). Four sinks out of a 7-token budget (10% of a 70-token prompt) left a dynamic
    head no chunk at all; one sink leaves it one (docs/methods.md, "Equal budgets"). Budgets that already
    afford the configured sizes keep them unchanged. ``window_yields``: where the window alone stands
    between the budget and one chunk (a 5-token share: one sink, one window token, 3 spare), shorten the
    window so that one chunk fits (docs/methods.md, "Short prompts"). A configured ``window`` of 0 stays 0.
    """
    if head_budget < 0 or sinks < 0 or window < 0 or chunk_size < 1:
        raise BudgetError(
            f"cannot fit a window and chunks to head_budget={head_budget}, sinks={sinks}, window={window}, "
            f"chunk_size={chunk_size}: budget, sinks and window must be >= 0, chunk_size >= 1"
        )
    fitted_window = min(window, max(1, int(head_budget * WINDOW_SHARE)))
    fitted_sinks = min(sinks, max(1, int(head_budget * SINK_SHARE)))
    room = head_budget - fitted_sinks - fitted_window
    if room >= MIN_SELECTED_CHUNKS * chunk_size:
        return FittedLayout(fitted_sinks, fitted_window, chunk_size)
    per_chunk = room // MIN_SELECTED_CHUNKS
    power_of_two = 1 << (per_chunk.bit_length() - 1) if per_chunk > 0 else 0
    fitted_chunk = min(chunk_size, max(MIN_CHUNK_TOKENS, power_of_two))
    if window_yields and room < fitted_chunk <= room + fitted_window:
        fitted_window -= fitted_chunk - room
    return FittedLayout(fitted_sinks, fitted_window, fitted_chunk)


@dataclass(frozen=True)
class DynamicLayout:
    """How a dynamic head of one prompt splits into always-resident tokens and retrievable chunks.

    The prompt is ``sinks`` tokens, then ``middle`` tokens, then the recent ``window``. Of the middle,
    ``core`` tokens (chosen at prefill, as a static head would) stay resident; the other ``body``
    tokens are cut into ``n_chunks`` chunks of ``chunk_size`` (the last one may be partial).
    """

    sinks: int
    middle: int
    n_chunks: int
    chunk_size: int
    window: int
    n_select: int  # chunks attended per decode step
    core: int = 0

    @property
    def body(self) -> int:
        """Middle tokens in the cold tier, retrievable by chunk."""
        return self.middle - self.core

    @property
    def resident_tokens(self) -> int:
        return self.sinks + self.window + self.core

    @property
    def attended_tokens(self) -> int:
        """Upper bound of tokens attended per step (exact unless the partial chunk is among those picked)."""
        return self.resident_tokens + min(self.n_select * self.chunk_size, self.body)


def dynamic_layout(
    prompt_len: int,
    budget_tokens: int,
    *,
    sinks: int,
    window: int,
    chunk_size: int,
    core_share: float = 0.0,
    chunkless_core: bool = False,
) -> DynamicLayout:
    """Split a dynamic head's prompt so that sinks + window + core + selected chunks never exceed its budget.

    ``core_share`` of the tokens left after sinks and window become the resident core; the rest of that
    spare is spent on chunks. ``chunkless_core``: a head whose spare cannot buy one chunk spends it all on
    the core (it keeps its best tokens, as a static head does) rather than attending its sinks and window
    only. The core is only that: a remainder of less than a chunk beside selected chunks stays unattended,
    since taking core tokens out of the body would shift every chunk off its alignment (measured: grid
    lookups at 5% fell from 94% to 56%). A budget that covers the whole prompt needs no core: every chunk
    is attended.
    """
    sinks = min(sinks, prompt_len)
    window = min(window, prompt_len - sinks)
    middle = prompt_len - sinks - window
    spare = budget_tokens - sinks - window
    core = 0 if spare >= middle else min(middle, max(0, int(core_share * spare)))
    if chunkless_core and 0 < spare - core < chunk_size and spare < middle:
        core = spare
    body = middle - core
    n_chunks = -(-body // chunk_size)
    n_select = n_chunks if spare - core >= body else max(0, min(n_chunks, (spare - core) // chunk_size))
    return DynamicLayout(
        sinks=sinks,
        middle=middle,
        n_chunks=n_chunks,
        chunk_size=chunk_size,
        window=window,
        n_select=n_select,
        core=core,
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
    "fastv": uniform_allocation,
    "profile": uniform_allocation,
    "modality": uniform_allocation,
}
"""Head-level split per allocator. ``pyramid`` and ``fastv`` are uniform within a layer but give layers
different budgets (``pyramid_layer_budgets``, ``fastv_layer_budgets``); ``profile`` replaces the split by
``profile_head_budgets`` over the whole model; ``modality`` starts from the uniform split and then moves
budget between modalities and layers (``modality_allocation``)."""


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


def pyramid_layer_budgets(
    per_head: int, prompt_len: int, num_layers: int, *, floor: int, beta: float = 20.0
) -> list[int]:
    """PyramidKV at equal budget: tokens each KV head of every layer keeps, summing to ``num_layers * per_head``.

    Layer ``i`` aims at ``pyramid_scale(i) * per_head``. On shallow models or small budgets the upper layers'
    targets fall below the sink + window floor and the lower layers' above the prompt; clamping alone would
    then keep more (or less) than the budget. Instead every layer gets the floor and the rest of the budget is
    split in proportion to how far each target is above the floor, capped at the prompt (water-filling), so
    the total is exact whenever ``num_layers * floor <= num_layers * per_head <= num_layers * prompt_len``.
    """
    if num_layers <= 0 or prompt_len <= 0:
        return [0] * max(num_layers, 0)
    floor = min(floor, prompt_len)
    per_head = max(floor, min(per_head, prompt_len))
    targets = [pyramid_scale(i, num_layers, beta) * per_head for i in range(num_layers)]
    extra = proportional_split(
        num_layers * (per_head - floor), [max(t - floor, 0.0) for t in targets], [prompt_len - floor] * num_layers
    )
    return [floor + e for e in extra]


def profile_layer_scales(layer_concentration: Sequence[float], *, floor: float = 0.25) -> list[float]:
    """Layer shares of the model's budget from each layer's mean head concentration in a profile.

    A layer whose heads concentrate on few tokens (concentration near 1) needs fewer tokens than one whose
    attention is spread, so its weight is ``1 - concentration``, lifted to ``floor`` times the mean weight so
    that no layer starves; the scales average to exactly 1 over the layers (the budget is kept on average).
    """
    if not layer_concentration:
        return []
    weights = [min(1.0, max(0.0, 1.0 - float(c))) for c in layer_concentration]
    mean = sum(weights) / len(weights)
    if mean <= 0.0:
        return [1.0] * len(weights)
    lifted = [max(w, floor * mean) for w in weights]
    total = sum(lifted)
    return [len(lifted) * w / total for w in lifted]


def input_adaptive_factor(concentration: float, reference: float, *, low: float = 0.5) -> float:
    """How much of a layer's share one prompt gets: 1 when its attention is at least as spread as in
    calibration, down to ``low`` as it concentrates more (spread ratio ``(1 - c) / (1 - c_ref)``)."""
    spread, ref_spread = 1.0 - float(concentration), 1.0 - float(reference)
    if ref_spread <= 0.0:
        return 1.0
    return min(1.0, max(low, spread / ref_spread))


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
    layer_scale: float | Sequence[float] = 1.0,
    importance: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-head budgets [B, H_kv] for one layer: each row's total is its per-head budget times H_kv.

    ``layer_scale`` multiplies the per-head budget of this layer (a layer schedule such as ``pyramid_scale``;
    one value, or one per row) before the floor and the prompt length clamp it. A budget that covers the
    whole prompt is never scaled: budget 1.0 means no compression under every allocator.
    ``importance`` [B, H_kv, L'] (each row's real tokens first) feeds the ``adaptive`` allocator.
    """
    fn = ALLOCATORS[name]
    rows = []
    n_heads = static.shape[1]
    scales = [float(layer_scale)] * len(lengths) if isinstance(layer_scale, (int, float)) else list(layer_scale)
    for b, length in enumerate(lengths):
        raw = budget * length if isinstance(budget, float) else float(budget)
        scaled = max(1, math.ceil(raw * scales[b] - 1e-9)) if raw < length else length
        total = n_heads * prompt_tokens_budget(scaled, length, floor=floor)
        row_importance = None if importance is None else importance[b]
        rows.append(
            fn(
                total,
                static[b].tolist(),
                scores[b].tolist(),
                length,
                floor=floor,
                sinks=sinks,
                window=window,
                chunk_size=chunk_size,
                r=r,
                importance=row_importance,
            )
        )
    return torch.tensor(rows, dtype=torch.long)


def fastv_layer_budgets(per_head: int, prompt_len: int, num_layers: int, full_layers: int, *, floor: int) -> list[int]:
    """FastV at equal budget: tokens each KV head of every layer keeps.

    The first ``full_layers`` layers (FastV's K) keep the whole prompt; the later layers share what is
    left of ``num_layers * per_head`` evenly (the first of them get the rounding remainder), so the mean
    over layers is exactly ``per_head``. Each later layer is clamped to ``[min(floor, prompt_len),
    prompt_len]``: when the full layers alone use more than the whole budget, the later layers get the
    floor and the mean is above ``per_head`` (no equal budget is possible then).
    """
    if num_layers <= 0:
        return []
    k = min(max(full_layers, 0), num_layers)
    rest = num_layers - k
    out = [prompt_len] * k
    if rest == 0:
        return out
    floor = min(floor, prompt_len)
    pool = num_layers * per_head - k * prompt_len
    each, extra = divmod(max(pool, 0), rest)
    return out + [max(floor, min(prompt_len, each + (j < extra))) for j in range(rest)]


def profile_head_budgets(
    per_head: int, prompt_len: int, weights: list[list[float]], *, floor: int, uniform_share: float = 0.2
) -> list[list[int]]:
    """SparseMM / HeadKV-style: tokens per (layer, KV head), the whole model's budget split by head weights.

    Every head first gets ``uniform_share`` of ``per_head`` (at least the floor, at most the prompt); the
    rest of ``num_layers * num_heads * per_head`` goes to the heads in proportion to ``weights``
    (``[layers][kv_heads]``, e.g. a profile's visual attention; NaN or negative counts as 0), each capped at
    the prompt. Integers; the sum is exactly the model's budget whenever the prompt can hold it.
    """
    n_layers = len(weights)
    n_heads = len(weights[0]) if n_layers else 0
    count = n_layers * n_heads
    if count == 0:
        return [[] for _ in range(n_layers)]
    per_head = min(per_head, prompt_len)
    base = min(prompt_len, max(min(floor, prompt_len), int(uniform_share * per_head)))
    flat = [w if (w == w and w > 0) else 0.0 for row in weights for w in row]  # w == w: not NaN
    spare = max(count * per_head - count * base, 0)
    extra = proportional_split(spare, flat, [prompt_len - base] * count)
    return [[base + extra[i * n_heads + j] for j in range(n_heads)] for i in range(n_layers)]


def modality_quotas(spare: int, visual_share: float, n_text: int, n_visual: int) -> tuple[int, int]:
    """One head's spare tokens (beyond sinks and window) split between text and visual tokens.

    The visual quota is ``round(spare * visual_share)``, the text quota the rest; each is capped at the
    tokens of that modality there are to keep. Returns (text, visual); what the caps cut off is unused.
    """
    spare = max(spare, 0)
    share = min(max(visual_share, 0.0), 1.0)
    visual_quota = math.floor(spare * share + 0.5)
    return min(n_text, spare - visual_quota), min(n_visual, visual_quota)


def modality_allocation(
    base: list[int],
    carry: int,
    visual_share: list[float],
    *,
    n_text: int,
    n_visual: int,
    protected: int,
    prompt_len: int,
    future_capacity: int,
) -> tuple[list[int], list[int], int]:
    """One layer of MadaKV for one prompt: (text tokens per head, visual tokens per head, carry out).

    ``base`` is each head's budget (sinks and window included), ``carry`` what earlier layers left
    unused; ``n_text`` / ``n_visual`` are the tokens of each modality besides the ``protected`` sinks and
    window. The carry is first spread evenly over the heads (capped at the prompt). Each head splits its
    spare by ``visual_share`` (``modality_quotas``). What a head cannot spend on a modality it prefers
    (too few tokens of it) is carried to the later layers, up to ``future_capacity`` (what they can still
    hold beyond their own budgets); the rest goes back to the same head's other modality, so no budget is
    lost: at the last layer (capacity 0) or at a budget that covers the prompt nothing is carried.
    """
    n = len(base)
    room = [max(prompt_len - b, 0) for b in base]
    placed = proportional_split(carry, [1.0] * n, room)
    budgets = [b + p for b, p in zip(base, placed, strict=True)]
    leftover = carry - sum(placed)  # only when every head already holds the whole prompt
    text, visual, unused = [], [], []
    for b, share in zip(budgets, visual_share, strict=True):
        spare = max(b - protected, 0)
        t, v = modality_quotas(spare, share, n_text, n_visual)
        text.append(t)
        visual.append(v)
        unused.append(spare - t - v)
    carry_out = min(sum(unused) + leftover, max(future_capacity, 0))
    give_back = min(sum(unused) + leftover - carry_out, sum(unused))  # the carry always holds the leftover
    back = proportional_split(give_back, [float(u) for u in unused], unused)
    for i, g in enumerate(back):  # a head's unused quota fits in its other modality by construction
        to_visual = min(g, n_visual - visual[i])
        visual[i] += to_visual
        text[i] += g - to_visual
    return text, visual, carry_out

"""What a layer learns from its own prefill: the observation window's attention, head scores, keep sets.

Everything here runs once per layer, inside the attention call that already holds the queries, so
classification needs no extra forward pass and never materialises the full L x L attention map:
only the last ``window`` queries are scored against the keys (as SnapKV does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..token_types import TokenType


def key_validity(attention_mask: torch.Tensor | None, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """[B, L] bool: which prompt positions are real tokens (left padding is False).

    Read off the last query row of the 4D mask the model built (bool: True attends; float: 0 attends).
    """
    if attention_mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    last = attention_mask[:, 0, -1, -length:]
    valid = last if last.dtype == torch.bool else last > torch.finfo(last.dtype).min / 2
    return valid.expand(batch, length).clone()


@dataclass
class WindowAnalysis:
    probs: torch.Tensor  # [B, H_kv, L] window attention averaged over the group's heads and window queries
    key_valid: torch.Tensor  # [B, L]
    lengths: torch.Tensor  # [B] real prompt tokens per row


def analyse_window(
    query: torch.Tensor, key: torch.Tensor, key_valid: torch.Tensor, *, window: int, scaling: float
) -> WindowAnalysis:
    """Attention of the last ``window`` prompt queries over all prompt keys, aggregated per KV head.

    query [B, H_q, q, D] (the prompt's queries, or at least its last ``window``); key [B, H_kv, L, D].
    """
    b, hq, q_len, d = query.shape
    hkv, length = key.shape[1], key.shape[2]
    g = hq // hkv
    w = min(window, q_len, length)
    qw = query[:, :, -w:, :].reshape(b, hkv, g * w, d)
    scores = torch.matmul(qw.float(), key.float().transpose(-1, -2)).mul_(scaling)  # [B, H_kv, G*w, L]
    qpos = torch.arange(length - w, length, device=query.device).repeat(g)  # position of each window row
    visible = (torch.arange(length, device=query.device)[None, :] <= qpos[:, None])[None, None]
    visible = visible & key_valid[:, None, None, :]
    scores.masked_fill_(~visible, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num_(0.0)  # a padded window query sees nothing -> 0
    row_valid = key_valid[:, -w:].repeat(1, g)  # [B, G*w]
    n_rows = row_valid.sum(-1).clamp_min(1).to(probs.dtype)
    mean = (probs * row_valid[:, None, :, None]).sum(2) / n_rows[:, None, None]
    return WindowAnalysis(probs=mean, key_valid=key_valid, lengths=key_valid.sum(-1))


def pooled_importance(probs: torch.Tensor, kernel: int) -> torch.Tensor:
    """Max-pool token scores along the sequence so a kept token brings its neighbourhood (SnapKV)."""
    if kernel <= 1:
        return probs
    b, h, length = probs.shape
    return F.max_pool1d(probs.reshape(b * h, 1, length), kernel, stride=1, padding=kernel // 2).reshape(b, h, length)


def protected_positions(key_valid: torch.Tensor, *, sinks: int, window: int) -> torch.Tensor:
    """[B, L] bool: the first ``sinks`` real tokens and the last ``window`` tokens of every row."""
    rank = torch.cumsum(key_valid.long(), dim=-1) - 1  # index among real tokens
    n = key_valid.sum(-1, keepdim=True)
    return key_valid & ((rank < sinks) | (rank >= n - window))


def text_prior_priority(importance: torch.Tensor, token_types: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """HybridKV's static heads: every text token first (by window attention), then visuals by attention."""
    is_text = (token_types == TokenType.TEXT)[:, None, :]
    return importance + is_text.to(importance.dtype) * 2.0  # importance <= 1: any text outranks any visual


def attention_priority(importance: torch.Tensor, token_types: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """SnapKV: pooled window attention alone, whatever the modality."""
    return importance


def recency_priority(importance: torch.Tensor, token_types: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """StreamingLLM: the most recent tokens (besides the sinks, which are always kept)."""
    rank = torch.cumsum(key_valid.long(), dim=-1).to(importance.dtype) / key_valid.shape[-1]
    return rank[:, None, :].expand_as(importance)


def fastv_priority(importance: torch.Tensor, token_types: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """FastV: every text token first (the most recent first), then visual tokens by ``importance``.

    In the cache, ``importance`` is one ranking shared by all heads and later layers (see ``HybridLayer``).
    """
    is_text = (token_types == TokenType.TEXT)[:, None, :]
    recency = (torch.cumsum(key_valid.long(), dim=-1).to(importance.dtype) / key_valid.shape[-1])[:, None, :]
    return torch.where(is_text, 2.0 + recency, importance)  # importance <= 1 < any text token


SELECTORS = {
    "text_prior": text_prior_priority,
    "attention": attention_priority,
    "recency": recency_priority,
    "fastv": fastv_priority,
}
"""How an evicting head ranks prompt tokens; the sinks and the recent window always come first."""


def accumulated_attention(
    query: torch.Tensor, key: torch.Tensor, key_valid: torch.Tensor, *, scaling: float, max_elements: int = 1 << 24
) -> torch.Tensor:
    """H2O's token scores: attention each key receives, accumulated over every prompt query, per KV head.

    query [B, H_q, q, D] (the prompt's last ``q`` positions, all of them at prefill); key [B, H_kv, L, D].
    Returns [B, H_kv, L]: the causal softmax summed over the group's query heads and every real query, divided
    by the number of those rows (so it lies in [0, 1] and ranks as the sum does). Queries are processed in
    blocks of at most ``max_elements`` scores, so the L x L map is never held at once.
    """
    b, hq, q_len, d = query.shape
    hkv, length = key.shape[1], key.shape[2]
    g = hq // hkv
    grouped = query.reshape(b, hkv, g, q_len, d)
    keys_t = key.float().transpose(-1, -2)[:, :, None]  # [B, H_kv, 1, D, L]
    positions = torch.arange(length, device=query.device)
    total = torch.zeros(b, hkv, length, dtype=torch.float32, device=query.device)
    rows = max(1, max_elements // max(1, b * hq * length))
    offset = length - q_len
    for start in range(0, q_len, rows):
        stop = min(q_len, start + rows)
        scores = torch.matmul(grouped[:, :, :, start:stop].float(), keys_t).mul_(scaling)  # [B, H_kv, G, r, L]
        qpos = positions[offset + start : offset + stop]
        visible = (positions[None, :] <= qpos[:, None])[None] & key_valid[:, None, :]  # [B, r, L]
        scores.masked_fill_(~visible[:, None, None], float("-inf"))
        probs = torch.softmax(scores, dim=-1).nan_to_num_(0.0)
        row_valid = key_valid[:, offset + start : offset + stop].to(probs.dtype)  # padded queries count for nothing
        total += (probs * row_valid[:, None, None, :, None]).sum((2, 3))
    n_rows = (key_valid[:, offset:].sum(-1) * g).clamp_min(1).to(total.dtype)
    return total / n_rows[:, None, None]


def keep_by_priority(
    priority: torch.Tensor,
    key_valid: torch.Tensor,
    budgets: torch.Tensor,
    *,
    sinks: int,
    window: int,
) -> torch.Tensor:
    """[B, H_kv, L] bool: the sinks, the recent window, then the highest ``priority`` (< 4), exactly
    ``budgets[b, h]`` real tokens per head."""
    prot = protected_positions(key_valid, sinks=sinks, window=window)[:, None, :]
    prio = priority + prot.to(priority.dtype) * 4.0
    prio = prio.masked_fill(~key_valid[:, None, :], float("-inf"))
    k_max = int(budgets.max())
    # a stable sort, not topk: ties (max-pooling makes plateaus) then break by position whatever k_max is,
    # so a row of a padded batch keeps what the prompt alone keeps
    idx = prio.argsort(dim=-1, descending=True, stable=True)[..., :k_max]  # [B, H, k_max]
    take = torch.arange(k_max, device=prio.device)[None, None, :] < budgets[..., None]
    keep = torch.zeros_like(prio, dtype=torch.bool)
    keep.scatter_(-1, idx, take)
    return keep & key_valid[:, None, :]


def _top_within(priority: torch.Tensor, eligible: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """[B, H, L] bool: the ``counts[b, h]`` highest-``priority`` positions among ``eligible`` ones."""
    k_max = int(counts.max()) if counts.numel() else 0
    keep = torch.zeros(priority.shape, dtype=torch.bool, device=priority.device)
    if k_max == 0:
        return keep
    prio = priority.masked_fill(~eligible, float("-inf"))
    idx = prio.argsort(dim=-1, descending=True, stable=True)[..., : min(k_max, prio.shape[-1])]
    take = torch.arange(idx.shape[-1], device=prio.device)[None, None, :] < counts[..., None]
    keep.scatter_(-1, idx, take)
    return keep & eligible


def modality_preference(probs: torch.Tensor, token_types: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """[B, H_kv]: the share of the window's attention on ``candidates`` ([B, L]) that lands on visual tokens.

    0.5 for a head that gives the candidates no attention at all; 0 without visual candidates.
    """
    is_visual = (token_types != TokenType.TEXT) & candidates
    is_text = (token_types == TokenType.TEXT) & candidates
    visual = (probs * is_visual[:, None, :].to(probs.dtype)).sum(-1)
    text = (probs * is_text[:, None, :].to(probs.dtype)).sum(-1)
    both = visual + text
    share = torch.where(both > 0, visual / both.clamp_min(1e-30), torch.full_like(both, 0.5))
    return torch.where(is_visual.any(-1, keepdim=True), share, torch.zeros_like(share))


def keep_by_modality(
    priority: torch.Tensor,
    token_types: torch.Tensor,
    key_valid: torch.Tensor,
    text_counts: torch.Tensor,
    visual_counts: torch.Tensor,
    *,
    sinks: int,
    window: int,
) -> torch.Tensor:
    """[B, H_kv, L] bool: the sinks and the window, then the ``text_counts[b, h]`` text tokens and the
    ``visual_counts[b, h]`` visual tokens of highest ``priority`` (MadaKV's per-modality selection)."""
    prot = protected_positions(key_valid, sinks=sinks, window=window)
    free = (key_valid & ~prot)[:, None, :]
    is_text = (token_types == TokenType.TEXT)[:, None, :]
    text = _top_within(priority, free & is_text, text_counts)
    visual = _top_within(priority, free & ~is_text, visual_counts)
    return prot[:, None, :] | text | visual


def merge_evicted(
    key: torch.Tensor, value: torch.Tensor, keep: torch.Tensor, evict: torch.Tensor, *, max_elements: int = 1 << 24
) -> tuple[torch.Tensor, torch.Tensor]:
    """LOOK-M's averaged merging: every evicted token joins the kept token of the same head whose key is the
    most similar (cosine), and each kept token becomes the mean of itself and the tokens that joined it.

    key, value [B, H_kv, L, D]; keep, evict [B, H_kv, L] bool (disjoint; every head with an evicted token
    keeps at least one). Keys and values are both merged. Returns new tensors (the inputs are untouched);
    kept tokens that nothing joined keep their exact values.
    """
    if not bool(evict.any()):
        return key, value
    b, h, length, d = key.shape
    unit = F.normalize(key.float(), dim=-1)
    target = torch.zeros(b, h, length, dtype=torch.long, device=key.device)
    rows = max(1, max_elements // max(1, b * h * length))
    for start in range(0, length, rows):
        stop = min(length, start + rows)
        if not bool(evict[:, :, start:stop].any()):
            continue
        sim = torch.matmul(unit[:, :, start:stop], unit.transpose(-1, -2))  # [B, H, r, L]
        sim.masked_fill_(~keep[:, :, None, :], float("-inf"))
        target[:, :, start:stop] = sim.argmax(-1)
    weight = evict.to(torch.float32)
    count = keep.to(torch.float32).scatter_add(-1, target, weight)
    index = target[..., None].expand(-1, -1, -1, d)
    merged = []
    for t in (key, value):
        total = (t.float() * keep[..., None]).scatter_add(2, index, t.float() * weight[..., None])
        mean = (total / count.clamp_min(1.0)[..., None]).to(t.dtype)
        joined = keep & (count > 1)  # untouched kept tokens stay bit-exact
        merged.append(torch.where(joined[..., None], mean, t))
    return merged[0], merged[1]

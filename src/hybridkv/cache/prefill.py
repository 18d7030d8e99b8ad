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


SELECTORS = {"text_prior": text_prior_priority, "attention": attention_priority, "recency": recency_priority}
"""How an evicting head ranks prompt tokens; the sinks and the recent window always come first."""


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
    idx = prio.topk(k_max, dim=-1).indices  # [B, H, k_max]
    take = torch.arange(k_max, device=prio.device)[None, None, :] < budgets[..., None]
    keep = torch.zeros_like(prio, dtype=torch.bool)
    keep.scatter_(-1, idx, take)
    return keep & key_valid[:, None, :]

"""Attention over variable-length per-head storage, without padding it to a common length.

Decode attends to three parts per layer: the packed resident tokens (each KV head its own length),
the retrieved chunk slots of dynamic heads, and the dense tail of tokens appended after prefill.
Each part returns a normalised output and its log-sum-exp per query column; ``merge_partials``
combines them exactly (the flash-decoding identity), so no part is ever concatenated or padded.

Query columns are ordered (batch, query head, query position), i.e. ``query.reshape(-1, D)`` of a
``[B, H_q, q, D]`` tensor.
"""

from __future__ import annotations

import torch


def segment_attention(
    q_cols: torch.Tensor,
    col_seg: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    tok_seg: torch.Tensor,
    scaling: float,
    active: torch.Tensor | None = None,
    *,
    return_logits: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Each query column attends to the tokens of its own segment (one segment = one (row, KV head)).

    q_cols [NQ, D], col_seg [NQ]; keys/values [N, D], tok_seg [N]; active [N] bool (optional).
    One GEMM scores every token against every column; a segment mask then keeps the matching pairs.
    That trades (rows x KV heads)-fold redundant FLOPs for reading the KV exactly once, which is what
    bounds decode. Returns (out [NQ, D], lse [NQ]); lse is -inf for a column with no tokens. With
    ``return_logits`` the scaled, masked scores [N, NQ] come third (H2O accumulates attention from them).
    """
    if keys.shape[0] == 0:
        out = (q_cols.new_zeros(q_cols.shape), q_cols.new_full((q_cols.shape[0],), float("-inf")))
        return (*out, q_cols.new_zeros((0, q_cols.shape[0]))) if return_logits else out
    scores = (keys @ q_cols.T).mul_(scaling)  # [N, NQ]
    mask = tok_seg[:, None] != col_seg[None, :]
    if active is not None:
        mask |= ~active[:, None]
    scores.masked_fill_(mask, float("-inf"))
    out = _softmax_out(scores, values)  # leaves ``scores`` as it is
    return (*out, scores) if return_logits else out


def tail_attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    scaling: float,
    key_valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention of the q newest positions over the dense tail (which already contains them).

    query [B, H_q, q, D]; keys/values [B, H_kv, T, D]; ``key_valid`` [B, T] masks padding (None: none).
    Returns (out [B*H_q*q, D], lse [B*H_q*q]).
    """
    b, hq, q, d = query.shape
    hkv, t = keys.shape[1], keys.shape[2]
    g = hq // hkv
    qg = query.reshape(b, hkv, g * q, d)
    scores = torch.matmul(qg, keys.transpose(-1, -2)).mul_(scaling)  # [B, H_kv, G*q, T]
    if q > 1:
        qpos = torch.arange(q, device=query.device).repeat(g) + (t - q)  # tail index of each query row
        future = torch.arange(t, device=query.device)[None, :] > qpos[:, None]
        scores.masked_fill_(future, float("-inf"))
    if key_valid is not None:
        scores.masked_fill_(~key_valid[:, None, None, :], float("-inf"))
    m = scores.amax(-1, keepdim=True)
    p = torch.exp(scores - m)
    s = p.sum(-1, keepdim=True)
    out = torch.matmul(p, values) / s
    lse = (torch.log(s) + m).squeeze(-1)
    return out.reshape(b * hq * q, d), lse.reshape(b * hq * q)


def _softmax_out(scores: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column-wise softmax of [N, NQ] scores (masked entries -inf) applied to values [N, D]."""
    m = scores.amax(0)
    m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(scores - m_safe)
    s = p.sum(0)
    out = (p.T @ values) / s.clamp_min(1e-30)[:, None]
    lse = torch.where(s > 0, torch.log(s.clamp_min(1e-30)) + m_safe, torch.full_like(s, float("-inf")))
    return out, lse


def merge_partials(outs: list[torch.Tensor], lses: list[torch.Tensor]) -> torch.Tensor:
    """Exact softmax over the union of disjoint key sets, from each set's output and log-sum-exp."""
    if len(outs) == 1:
        return outs[0]
    lse = torch.stack(lses)  # [P, NQ]
    w = torch.softmax(lse, dim=0)  # parts with lse=-inf get weight 0
    return (torch.stack(outs) * w[..., None]).sum(0)

"""Text-centric head scores and the static / dynamic rule.

The paper classifies heads online, per input, at prefill, by how concentrated the attention of the
text (instruction) queries is, with a fixed threshold theta = 0.9; its exact score is not public.
Our definitions (documented in docs/method.md) all start from the same cheap quantity: the attention
distribution of the observation window's queries (the prompt's last tokens), averaged over the window
and over the query heads of each KV group, ``p[b, h, :]``. Averaging first is deliberate: a head whose
queries each look at different places has a spread-out average, which is exactly what makes it
dynamic. Every score is in [0, 1]; high means concentrated, i.e. static.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .token_types import TokenType

ScoreFn = Callable[..., torch.Tensor]


def topk_mass(
    probs: torch.Tensor, key_valid: torch.Tensor, token_types: torch.Tensor, *, top_ratio: float = 0.05
) -> torch.Tensor:
    """Share of the window's attention held by the top ``top_ratio`` of the prompt's keys.

    probs: [B, H_kv, L] (zero on padding); key_valid: [B, L] bool. Returns [B, H_kv].
    """
    n_valid = key_valid.sum(-1)  # [B]
    k_row = torch.clamp((n_valid.double() * top_ratio).ceil().long(), min=1)  # [B]
    k_max = int(k_row.max().item())
    top = probs.topk(min(k_max, probs.shape[-1]), dim=-1).values  # [B, H, k_max]
    rank = torch.arange(top.shape[-1], device=probs.device)
    take = rank[None, None, :] < k_row[:, None, None]
    mass = (top * take).sum(-1)
    return (mass / probs.sum(-1).clamp_min(1e-30)).clamp(0.0, 1.0)


def entropy_concentration(probs: torch.Tensor, key_valid: torch.Tensor, token_types: torch.Tensor) -> torch.Tensor:
    """1 - normalised entropy of the window's attention: 1 for a single key, 0 for uniform."""
    p = probs / probs.sum(-1, keepdim=True).clamp_min(1e-30)
    ent = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)  # [B, H]
    n_valid = key_valid.sum(-1).clamp_min(2).to(probs.dtype)  # [B]
    return (1.0 - ent / torch.log(n_valid)[:, None]).clamp(0.0, 1.0)


def text_mass(probs: torch.Tensor, key_valid: torch.Tensor, token_types: torch.Tensor) -> torch.Tensor:
    """Share of the window's attention that lands on text keys (a text-anchored head is static)."""
    is_text = ((token_types == TokenType.TEXT) & key_valid).to(probs.dtype)  # [B, L]
    return ((probs * is_text[:, None, :]).sum(-1) / probs.sum(-1).clamp_min(1e-30)).clamp(0.0, 1.0)


def text_anchored_topk(
    probs: torch.Tensor, key_valid: torch.Tensor, token_types: torch.Tensor, *, top_ratio: float = 0.05
) -> torch.Tensor:
    """``topk_mass`` times ``text_mass`` (the default): high only for a head concentrated *on text*.

    A static head is pruned text-first, which only fits a head that reads text. A head whose window
    attention sits on a few visual tokens is a lookup head: what it reads depends on the question (in the
    question-agnostic setting, on a question not yet asked), and text-first pruning drops exactly that.
    Measured on the embedded model: its last layer concentrates on visual tokens at the end of a context
    (``topk_mass`` 0.9-0.99), which made it static on about half the inputs and cost HybridKV most of its
    accuracy on ``long_mixed`` and ``video`` (docs/method.md). On text-only prompts it equals ``topk_mass``.
    """
    return topk_mass(probs, key_valid, token_types, top_ratio=top_ratio) * text_mass(probs, key_valid, token_types)


SCORES: dict[str, ScoreFn] = {
    "topk_mass": topk_mass,
    "entropy": entropy_concentration,
    "text_mass": text_mass,
    "text_topk": text_anchored_topk,
}
TOP_RATIO_SCORES = frozenset({"topk_mass", "text_topk"})


def head_scores(
    name: str, probs: torch.Tensor, key_valid: torch.Tensor, token_types: torch.Tensor, *, top_ratio: float
) -> torch.Tensor:
    """Dispatch by name; the only place that knows which score takes which option."""
    if name in TOP_RATIO_SCORES:
        return SCORES[name](probs, key_valid, token_types, top_ratio=top_ratio)
    return SCORES[name](probs, key_valid, token_types)


def threshold_rule(scores: torch.Tensor, *, theta: float, **_: object) -> torch.Tensor:
    """The paper's rule: static when the score passes a fixed threshold."""
    return scores >= theta


def quantile_rule(scores: torch.Tensor, *, dynamic_share: float, **_: object) -> torch.Tensor:
    """A fixed share of each layer's heads (per prompt) is dynamic: the least concentrated ones.

    Unlike a fixed threshold, this adapts to how concentrated a model's heads are overall.
    """
    n = scores.shape[-1]
    n_dynamic = min(n, max(0, round(dynamic_share * n)))
    order = scores.argsort(dim=-1, stable=True)  # ascending: least concentrated first
    static = torch.ones_like(scores, dtype=torch.bool)
    static.scatter_(-1, order[..., :n_dynamic], False)
    return static


RULES = {"threshold": threshold_rule, "quantile": quantile_rule}
MODES = ("online", "profile", "blend")


def classify_static(
    scores: torch.Tensor,
    theta: float,
    policy: str = "online",
    *,
    mode: str = "online",
    rule: str = "threshold",
    dynamic_share: float = 0.5,
    prior: torch.Tensor | None = None,
    margin: float = 0.05,
) -> torch.Tensor:
    """Boolean [B, H_kv]: True where the head is static (prune text-first), False where dynamic (retrieve).

    ``mode``: ``online`` decides from this input's scores with ``rule`` (the paper); ``profile`` uses the
    offline profile's fixed types ``prior`` [H_kv]; ``blend`` keeps the prior unless this input's score
    crosses theta by more than ``margin`` the other way.
    """
    if policy == "static":
        return torch.ones_like(scores, dtype=torch.bool)
    if policy == "dynamic":
        return torch.zeros_like(scores, dtype=torch.bool)
    if mode == "online":
        return RULES[rule](scores, theta=theta, dynamic_share=dynamic_share)
    if prior is None:
        raise ValueError(f"classification mode {mode!r} needs a profile prior")
    prior = prior.to(scores.device)[None, :].expand_as(scores)
    if mode == "profile":
        return prior.clone()
    return torch.where(prior, scores >= theta - margin, scores >= theta + margin)

"""H2O's decode-time eviction: every compressed head stays at its budget while tokens are generated.

At prefill a head keeps its budget of prompt tokens, ranked by the attention each one received from every
prompt query. While decoding, each step's queries add their attention to those scores, and as soon as a
head's kept prompt tokens plus the tokens generated so far exceed its budget, the kept prompt tokens with
the lowest accumulated attention are evicted (sinks never are). Generated tokens are never evicted: they
are H2O's recent window, and answers here are short. A question appended after compression (a chat turn,
several tokens at once) is input, not generation: it is kept beside the budget, as every other method
keeps it, and does not make the head evict. A head whose budget covers its whole prompt was not
compressed and never evicts, so budget 1.0 still reproduces the full cache exactly.
"""

from __future__ import annotations

import torch

from .hot_store import HotStore


class DecodeEviction:
    """Accumulated scores and sink flags of the resident tokens, in the hot store's order."""

    def __init__(self, scores: torch.Tensor, sinks: torch.Tensor, budgets: torch.Tensor, compressed: torch.Tensor):
        """scores [N] float32, sinks [N] bool (resident tokens); budgets / compressed [segments] per (row, head)."""
        self.scores = scores
        self.sinks = sinks
        self.budgets = budgets
        self.compressed = compressed

    def accumulate(self, logits: torch.Tensor, lse: torch.Tensor) -> None:
        """Add this step's attention to each resident token, from the hot store's masked attention logits
        [N, NQ] (``segment_attention(..., return_logits=True)``) and each column's log-sum-exp [NQ] over
        every part it attended (resident tokens and tail)."""
        self.scores += torch.exp(logits.float() - lse.float()[None, :]).sum(-1)

    def evict(self, hot: HotStore, generated: int) -> HotStore:
        """The hot store with each compressed head cut back to ``budget - generated`` prompt tokens (not below
        its sinks), the lowest-scored going first; ``hot`` itself when nothing has to go."""
        n_segments = self.budgets.shape[0]
        seg = hot.seg.long()
        counts = torch.bincount(seg, minlength=n_segments)
        n_sinks = torch.bincount(seg[self.sinks], minlength=n_segments)
        allowed = torch.maximum(self.budgets - generated, n_sinks)
        over = torch.where(self.compressed, (counts - allowed).clamp_min(0), torch.zeros_like(counts))
        if int(over.sum()) == 0:
            return hot
        # rank tokens inside their segment: non-sinks by ascending score first, sinks last
        order = torch.argsort(self.scores, stable=True)
        order = order[torch.argsort(self.sinks[order].long(), stable=True)]
        order = order[torch.argsort(seg[order], stable=True)]
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.shape[0], device=order.device) - starts[seg[order]]
        keep = rank >= over[seg]
        self.scores = self.scores[keep]
        self.sinks = self.sinks[keep]
        return HotStore(hot.keys[keep], hot.values[keep], hot.seg[keep])
